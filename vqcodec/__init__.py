"""vqcodec: neural codecs, tokenizers and vector quantizers for PyTorch."""

__version__ = "0.1.0"
