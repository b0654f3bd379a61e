"""Training: runtime settings, the epoch loop, one fold, an experiment, their output files."""
