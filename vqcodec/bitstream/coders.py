"""Stream coders: one code plane ``[rows, length]`` to bytes and back.

* ``raw``: fixed-width bit packing; no tables.
* ``static``: ANS (constriction) with the plane's static frequency table.
* ``repeat``: a context model conditioning each code on the previous position's code of the
  same plane (the previous element along the last axis): a flag "same as before" per position
  (Bernoulli, fitted probability), then the codes that changed, with the static table.
* ``level``: a context model conditioning each code on the previous plane's code at the same
  position (bucketed ``mod LEVEL_CONTEXTS``). The decoder has that plane already, so the codes
  of each context are coded together with that context's table.

Every decoder checks what it produces (lengths, code ranges, a fully consumed coder) and raises
:class:`~vqcodec.bitstream.errors.CorruptStreamError` otherwise.
"""

from __future__ import annotations

import constriction  # a compiled module: its submodules are attributes, not importable paths
import numpy as np

from vqcodec.bitstream.errors import CorruptStreamError
from vqcodec.bitstream.packing import bits_for, pack_bits, packed_size, unpack_bits
from vqcodec.bitstream.tables import PRECISION, REPEAT_PRECISION

AnsCoder = constriction.stream.stack.AnsCoder
Bernoulli = constriction.stream.model.Bernoulli
Categorical = constriction.stream.model.Categorical

CODERS = ("raw", "static", "repeat", "level")


# Building a model costs O(K); tables are immutable, so each table's models are built once.
# Keyed by the array's id, holding the array itself so the id cannot be reused while cached.
_MODELS: dict[int, tuple[np.ndarray, object]] = {}


def _cached(table: np.ndarray, build):
    hit = _MODELS.get(id(table))
    if hit is not None and hit[0] is table:
        return hit[1]
    if len(_MODELS) > 1024:
        _MODELS.clear()
    model = build(table)
    _MODELS[id(table)] = (table, model)
    return model


def _categorical(frequencies: np.ndarray) -> Categorical:
    # Exact dyadic float64 values: identical inputs on every machine.
    return _cached(
        frequencies,
        lambda f: Categorical(f.astype(np.float64) / float(1 << PRECISION), perfect=False),
    )


def _categorical_rows(level: np.ndarray) -> list[Categorical]:
    """One model per context row of a level table."""
    return _cached(
        level,
        lambda table: [
            Categorical(row.astype(np.float64) / float(1 << PRECISION), perfect=False)
            for row in table
        ],
    )


def _bernoulli(repeat: int) -> Bernoulli:
    return Bernoulli(repeat / float(1 << REPEAT_PRECISION), perfect=False)


def _words(payload: bytes) -> np.ndarray:
    if len(payload) % 4:
        raise CorruptStreamError("entropy-coded stream length is not a whole number of words")
    return np.frombuffer(payload, dtype="<u4").astype(np.uint32)


def _decode(coder: AnsCoder, model: object, count: int) -> np.ndarray:
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    try:
        return np.asarray(coder.decode(model, count), dtype=np.int64)
    except Exception as error:  # constriction reports malformed data with its own errors
        raise CorruptStreamError(f"entropy decoder failed: {error}") from None


def _context_groups(previous: np.ndarray, contexts: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions sorted by context (stable) and the number of positions in each context."""
    context = previous.reshape(-1) % contexts
    return np.argsort(context, kind="stable"), np.bincount(context, minlength=contexts)


def encode_plane(
    plane: np.ndarray,
    coder: str,
    codebook_size: int,
    frequencies: np.ndarray | None = None,
    repeat: int | None = None,
    level: np.ndarray | None = None,
    previous: np.ndarray | None = None,
) -> bytes:
    """Bytes for ``plane [rows, length]`` (non-negative ints ``< codebook_size``); ``level`` and
    ``previous`` (the previous plane, same shape) are needed by the ``level`` coder only."""
    flat = plane.reshape(-1)
    if coder == "raw":
        return pack_bits(flat, bits_for(codebook_size))
    ans = AnsCoder()
    if coder == "level":
        order, sizes = _context_groups(previous, level.shape[0])
        groups = np.split(flat[order], np.cumsum(sizes)[:-1])
        models = _categorical_rows(level)
        # Last-in first-out: encode the last context first so the decoder reads context 0 first.
        for context in reversed(range(level.shape[0])):
            if groups[context].size:
                ans.encode_reverse(groups[context].astype(np.int32), models[context])
    elif coder == "static":
        if flat.size:
            ans.encode_reverse(flat.astype(np.int32), _categorical(frequencies))
    elif coder == "repeat":
        flags = plane[:, 1:] == plane[:, :-1]  # [rows, length - 1]
        changed = np.ones(plane.shape, dtype=bool)
        changed[:, 1:] = ~flags
        fresh = plane[changed]
        # ANS is last-in first-out: encode the codes first so the decoder reads the flags first.
        if fresh.size:
            ans.encode_reverse(fresh.astype(np.int32), _categorical(frequencies))
        if flags.size:
            ans.encode_reverse(flags.reshape(-1).astype(np.int32), _bernoulli(repeat))
    else:
        raise ValueError(f"unknown coder {coder!r}")
    return ans.get_compressed().astype("<u4").tobytes()


def decode_plane(
    payload: bytes,
    coder: str,
    shape: tuple[int, int],
    codebook_size: int,
    frequencies: np.ndarray | None = None,
    repeat: int | None = None,
    level: np.ndarray | None = None,
    previous: np.ndarray | None = None,
) -> np.ndarray:
    """Inverse of :func:`encode_plane`: int64 ``[rows, length]``."""
    rows, length = shape
    count = rows * length
    if coder == "raw":
        bits = bits_for(codebook_size)
        if len(payload) != packed_size(count, bits):
            raise CorruptStreamError(
                f"raw stream has {len(payload)} bytes, expected {packed_size(count, bits)}"
            )
        plane = unpack_bits(payload, count, bits).reshape(rows, length)
    else:
        ans = AnsCoder(_words(payload))
        if coder == "static":
            plane = _decode(ans, _categorical(frequencies), count).reshape(rows, length)
        elif coder == "level":
            order, sizes = _context_groups(previous, level.shape[0])
            grouped = np.concatenate(
                [
                    _decode(ans, _categorical(level[c]), int(n))
                    if n
                    else np.zeros(0, dtype=np.int64)
                    for c, n in enumerate(sizes)
                ]
            )
            flat = np.empty(count, dtype=np.int64)
            flat[order] = grouped
            plane = flat.reshape(rows, length)
        else:
            flags = _decode(ans, _bernoulli(repeat), rows * (length - 1)).reshape(rows, length - 1)
            changed = np.ones((rows, length), dtype=bool)
            changed[:, 1:] = flags == 0
            fresh = _decode(ans, _categorical(frequencies), int(changed.sum()))
            values = np.zeros((rows, length), dtype=np.int64)
            values[changed] = fresh
            # Forward-fill each repeated position from the last position that changed.
            source = np.where(changed, np.arange(length), 0)
            np.maximum.accumulate(source, axis=1, out=source)
            plane = np.take_along_axis(values, source, axis=1)
        if not ans.is_empty():
            raise CorruptStreamError("entropy-coded stream has data left after its last code")
    if plane.size and (plane.min() < 0 or plane.max() >= codebook_size):
        raise CorruptStreamError(f"decoded a code outside 0..{codebook_size - 1}")
    return plane
