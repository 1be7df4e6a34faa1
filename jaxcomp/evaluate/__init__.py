"""Rate-distortion evaluation: real bitstreams, classical anchors, BD-rate, plots, tables."""
