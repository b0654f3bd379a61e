"""hbac: a competition pipeline for EEG classification (HMS HBAC, CHB-MIT)."""
__version__ = "0.1.0"
