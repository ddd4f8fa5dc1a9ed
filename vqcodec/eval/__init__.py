"""Evaluation: quality metrics, reference codecs, and rate-distortion over a folder of files."""
