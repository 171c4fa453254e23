"""RideEase Reco: the Django project package (settings, URLs, WSGI, error handling, local launcher)."""

__version__ = "0.1.0"
