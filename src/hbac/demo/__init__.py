"""`python -m hbac demo`: the whole pipeline on synthetic data."""
