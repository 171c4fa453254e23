"""The Django-free core: the domain's error type and names, the recommender algorithms, the artifact format and the
experiment statistics. Nothing here imports Django, so all of it runs and is tested without settings."""
