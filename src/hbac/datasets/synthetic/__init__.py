"""Synthetic datasets written in each real layout, with class patterns a model can learn."""
from hbac.datasets.synthetic.chbmit import write_chbmit
from hbac.datasets.synthetic.hms import hms_truth, write_hms

__all__ = ["hms_truth", "write_chbmit", "write_hms"]
