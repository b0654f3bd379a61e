"""Signal processing: montages, filters, resampling (numpy), spectrograms (torch, in `spectrogram`)."""
