"""Recommenders for implicit feedback, their offline evaluation and the training arrays they learn from."""
