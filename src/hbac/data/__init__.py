"""Data for training: folds, row selection, the torch Dataset, augmentations, samplers."""
