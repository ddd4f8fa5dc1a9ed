"""Search kernels shared by every quantizer."""

from vqcodec.kernels.op import nearest_code
from vqcodec.kernels.reference import nearest_code_reference

__all__ = ["nearest_code", "nearest_code_reference"]
