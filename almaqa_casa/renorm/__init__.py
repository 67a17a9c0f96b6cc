"""Amplitude renormalization: scaling spectra, atmospheric lines, plots."""
