"""vqcodec: neural codecs, tokenizers and vector quantizers for PyTorch."""

__version__ = "0.1.0"

from vqcodec.bitstream import compress, decompress  # noqa: E402
from vqcodec.checkpoint import from_pretrained, load, register_model, save_pretrained  # noqa: E402

__all__ = [
    "__version__",
    "compress",
    "decompress",
    "from_pretrained",
    "load",
    "register_model",
    "save_pretrained",
]
