"""Interpretability: Grad-CAM, optimal samples, activation maximisation, reverse convolution, summary figures.

One module per method (gradcam, optimal, actmax, deconv, figures, importance); `run.explain`
runs them all on one trained fold (`python -m hbac explain EXPERIMENT`).
"""
