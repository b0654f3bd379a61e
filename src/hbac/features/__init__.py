"""Classic EEG features and the scikit-learn baseline."""
