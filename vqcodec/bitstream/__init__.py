"""The ``.vqc`` bitstream: container, deterministic entropy coding of codes, model-level API.

Format specification: ``docs/FORMAT.md``.
"""

from vqcodec.bitstream.codes import CodeLayout, pack_codes, read_code_header, unpack_codes
from vqcodec.bitstream.compress import compress, config_hash, decompress
from vqcodec.bitstream.errors import (
    BadMagicError,
    BitstreamError,
    ChecksumError,
    CorruptStreamError,
    HeaderError,
    MissingTablesError,
    ModelMismatchError,
    TruncatedError,
    UnsupportedVersionError,
)
from vqcodec.bitstream.tables import CodeTables

__all__ = [
    "BadMagicError",
    "BitstreamError",
    "ChecksumError",
    "CodeLayout",
    "CodeTables",
    "CorruptStreamError",
    "HeaderError",
    "MissingTablesError",
    "ModelMismatchError",
    "TruncatedError",
    "UnsupportedVersionError",
    "compress",
    "config_hash",
    "decompress",
    "pack_codes",
    "read_code_header",
    "unpack_codes",
]
