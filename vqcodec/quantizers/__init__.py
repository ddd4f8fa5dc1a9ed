"""The shared quantizer library: one interface (:class:`Quantizer`, :class:`QuantizerOutput`),
any quantizer in any codec.
"""

from vqcodec.quantizers.base import Quantizer, QuantizerOutput
from vqcodec.quantizers.clustered import ClusteredVectorQuantizer
from vqcodec.quantizers.estimators import RotationTrick, StraightThrough
from vqcodec.quantizers.fsq import FiniteScalarQuantizer
from vqcodec.quantizers.grouped import GroupedQuantizer
from vqcodec.quantizers.gumbel import GumbelQuantizer
from vqcodec.quantizers.residual import ResidualQuantizer
from vqcodec.quantizers.simvq import SimVQ
from vqcodec.quantizers.vector import VectorQuantizer

__all__ = [
    "ClusteredVectorQuantizer",
    "FiniteScalarQuantizer",
    "GroupedQuantizer",
    "GumbelQuantizer",
    "Quantizer",
    "QuantizerOutput",
    "ResidualQuantizer",
    "RotationTrick",
    "SimVQ",
    "StraightThrough",
    "VectorQuantizer",
]
