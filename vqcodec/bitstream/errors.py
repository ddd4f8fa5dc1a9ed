"""Every way a ``.vqc`` file can be refused, each with its own exception type.

All derive from :class:`BitstreamError`, so callers can catch one type; the message says what
is wrong in words a person understands.
"""

from __future__ import annotations


class BitstreamError(ValueError):
    """Base class: the data is not a readable ``.vqc`` file for this reader."""


class BadMagicError(BitstreamError):
    """The data does not start with the ``.vqc`` magic bytes."""


class UnsupportedVersionError(BitstreamError):
    """The file's format version is newer (or older) than this reader understands."""


class TruncatedError(BitstreamError):
    """The file ends before the structure it declares."""


class ChecksumError(BitstreamError):
    """A CRC32 does not match: the named part of the file is corrupt."""


class HeaderError(BitstreamError):
    """The JSON header is missing fields, has wrong types, or declares absurd sizes."""


class CorruptStreamError(BitstreamError):
    """A code stream passed its checksum but does not decode to valid codes."""


class MissingTablesError(BitstreamError):
    """A stream was entropy-coded with tables the reader was not given (or other tables)."""


class ModelMismatchError(BitstreamError):
    """The file was written by a model whose config differs from the one decoding it."""
