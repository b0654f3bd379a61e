"""Names fixed by the datasets themselves (columns, channels, classes)."""
from __future__ import annotations

# ----------------------------------------------------------------------------- HMS
HMS_CLASSES = ["seizure", "lpd", "gpd", "lrda", "grda", "other"]
HMS_VOTE_COLS = [f"{c}_vote" for c in HMS_CLASSES]
HMS_CONSENSUS = ["Seizure", "LPD", "GPD", "LRDA", "GRDA", "Other"]  # expert_consensus values
HMS_FS = 200.0  # Hz
HMS_EEG_CHANNELS = [
    "Fp1", "F3", "C3", "P3", "F7", "T3", "T5", "O1", "Fz", "Cz", "Pz",
    "Fp2", "F4", "C4", "P4", "F8", "T4", "T6", "O2", "EKG",
]  # column order of the real train_eegs/*.parquet files
HMS_TRAIN_DTYPES = {
    "eeg_id": "int64",
    "eeg_sub_id": "int64",
    "eeg_label_offset_seconds": "float64",
    "spectrogram_id": "int64",
    "spectrogram_sub_id": "int64",
    "spectrogram_label_offset_seconds": "float64",
    "label_id": "int64",
    "patient_id": "int64",
    "expert_consensus": "str",
    **{c: "int64" for c in HMS_VOTE_COLS},
}
HMS_TEST_DTYPES = {"spectrogram_id": "int64", "eeg_id": "int64", "patient_id": "int64"}
# Kaggle spectrograms: `time` (1, 3, 5, … s) + 4 regions × 100 frequencies
SPEC_REGIONS = ["LL", "RL", "LP", "RP"]
SPEC_FREQS = [round(0.59 + 0.1953125 * i, 2) for i in range(100)]  # 0.59 … 19.92 Hz
SPEC_STEP_S = 2.0
SPEC_WINDOW_S = 600.0  # 10 minutes → 300 steps
HMS_EEG_WINDOW_S = 50.0

# Double banana: four chains of 4 bipolar pairs (LL, RL, LP, RP) + optional central chain
# Chain order LL, RL, LP, RP matches the region order of the Kaggle spectrogram columns.
BANANA_CHAINS = {
    "LL": [("Fp1", "F7"), ("F7", "T3"), ("T3", "T5"), ("T5", "O1")],
    "RL": [("Fp2", "F8"), ("F8", "T4"), ("T4", "T6"), ("T6", "O2")],
    "LP": [("Fp1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1")],
    "RP": [("Fp2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2")],
}
CENTRAL_CHAIN = [("Fz", "Cz"), ("Cz", "Pz")]

# ----------------------------------------------------------------------------- CHB-MIT
CHBMIT_CLASSES = ["background", "seizure"]
CHBMIT_FS = 256.0
# 18-channel double banana as named in CHB-MIT EDF headers
CHBMIT_BANANA = [
    "FP1-F7", "F7-T7", "T7-P7", "P7-O1",
    "FP1-F3", "F3-C3", "C3-P3", "P3-O1",
    "FP2-F4", "F4-C4", "C4-P4", "P4-O2",
    "FP2-F8", "F8-T8", "T8-P8", "P8-O2",
    "FZ-CZ", "CZ-PZ",
]


def vote_cols(classes: list[str]) -> list[str]:
    return [f"{c}_vote" for c in classes]


def pred_cols(classes: list[str]) -> list[str]:
    return [f"{c}_pred" for c in classes]
