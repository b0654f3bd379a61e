"""Inference: fold-averaged prediction, `submit.py`, seizure `detect`."""
