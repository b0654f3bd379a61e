"""Synthetic datasets written in each real layout, with class patterns a model can learn."""
from hbac.datasets.synthetic.bids import write_bids
from hbac.datasets.synthetic.chbmit import write_chbmit
from hbac.datasets.synthetic.hms import hms_train_table, hms_truth, write_hms
from hbac.datasets.synthetic.tusz import write_tusz

__all__ = ["hms_train_table", "hms_truth", "write_bids", "write_chbmit", "write_hms", "write_tusz"]
