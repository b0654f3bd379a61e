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
# (k + 3) * 200/1024 Hz, k = 0 … 99, rounded to 2 decimals exactly as the real column names are
# (3.125 → 3.13 and 15.625 → 15.63, yet 0.78125 → 0.78): no rounding rule reproduces them all.
SPEC_FREQS = [
    0.59, 0.78, 0.98, 1.17, 1.37, 1.56, 1.76, 1.95, 2.15, 2.34, 2.54, 2.73, 2.93, 3.13, 3.32, 3.52, 3.71,
    3.91, 4.1, 4.3, 4.49, 4.69, 4.88, 5.08, 5.27, 5.47, 5.66, 5.86, 6.05, 6.25, 6.45, 6.64, 6.84, 7.03,
    7.23, 7.42, 7.62, 7.81, 8.01, 8.2, 8.4, 8.59, 8.79, 8.98, 9.18, 9.38, 9.57, 9.77, 9.96, 10.16, 10.35,
    10.55, 10.74, 10.94, 11.13, 11.33, 11.52, 11.72, 11.91, 12.11, 12.3, 12.5, 12.7, 12.89, 13.09, 13.28,
    13.48, 13.67, 13.87, 14.06, 14.26, 14.45, 14.65, 14.84, 15.04, 15.23, 15.43, 15.63, 15.82, 16.02,
    16.21, 16.41, 16.6, 16.8, 16.99, 17.19, 17.38, 17.58, 17.77, 17.97, 18.16, 18.36, 18.55, 18.75,
    18.95, 19.14, 19.34, 19.53, 19.73, 19.92,
]  # Hz; column names print them as Python floats: `LL_4.1`, not `LL_4.10`
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
