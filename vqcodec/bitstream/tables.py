"""Integer probability tables for the entropy coders, fitted from a model's training codes.

Encoder and decoder must build bit-identical models on any machine, so tables are integer
frequencies computed with integer arithmetic only: every symbol gets at least 1, and each table
sums to exactly ``2**PRECISION``. They are handed to the coder as the exact float64 values
``frequency / 2**PRECISION``; the coder's own fixed-point conversion of those identical inputs
is deterministic.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

PRECISION = 24  # constriction's categorical models use 24-bit fixed point
REPEAT_PRECISION = 16  # the "same code as the previous position" flag
LEVEL_CONTEXTS = 64  # buckets of the previous plane's code (code mod 64) for the level model
MAX_LEVEL_ALPHABET = 4096  # larger alphabets get no level tables: [64, K] would be too big
LEVEL_SMOOTHING = 16.0  # pseudo-counts drawn from the plane's marginal for each context


def quantize_counts(counts: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Integer frequencies ``>= 1`` summing to ``2**precision``, proportional to ``counts``.

    Integer arithmetic only: ``1 + floor(count·(total − K)/Σcount)``, then the remainder goes
    one unit each to the symbols with the largest fractional parts (ties to the lowest index).
    """
    counts = np.asarray(counts, dtype=np.int64)
    k = counts.size
    total = 1 << precision
    if k > total:
        raise ValueError(f"an alphabet of {k} symbols does not fit {precision}-bit tables")
    spare = total - k
    mass = int(counts.sum())
    if mass == 0:
        counts, mass = np.ones(k, dtype=np.int64), k
    if int(counts.max()) * spare < (1 << 62):
        scaled = counts * spare
        base, fraction = scaled // mass, scaled % mass
    else:  # Python ints: count·spare would overflow int64
        scaled = [int(c) * spare for c in counts]
        base = np.array([v // mass for v in scaled], dtype=np.int64)
        fraction = np.array([v % mass for v in scaled], dtype=object).astype(float)
    remainder = spare - int(base.sum())
    # Largest fractional parts first, ties to the lowest index (a stable sort of -fraction).
    order = np.argsort(-np.asarray(fraction), kind="stable")[:remainder]
    base[order] += 1
    return base + 1


@dataclass(frozen=True)
class CodeTables:
    """Static per-plane tables and repeat-flag probabilities for one model.

    Attributes:
        frequencies: per code plane, int64 frequencies ``[K_q]`` summing to ``2**PRECISION``.
        repeat: per code plane, the frequency (out of ``2**REPEAT_PRECISION``) with which a code
            equals the previous position's code of the same plane; in ``[1, 2**16 − 1]``.
        level: per code plane, ``[LEVEL_CONTEXTS, K_q]`` frequencies conditioned on the previous
            plane's code at the same position (bucket ``code mod LEVEL_CONTEXTS``), or ``None``
            (plane 0, and alphabets over ``MAX_LEVEL_ALPHABET``).
    """

    frequencies: tuple[np.ndarray, ...]
    repeat: tuple[int, ...]
    level: tuple[np.ndarray | None, ...] = ()

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return tuple(int(f.size) for f in self.frequencies)

    @functools.cached_property
    def table_id(self) -> str:
        """A content hash: files record it, readers check it (computed once: tables are
        immutable, and hashing megabytes per file would dominate coding short files)."""
        digest = hashlib.sha256()
        for q, (frequencies, repeat) in enumerate(zip(self.frequencies, self.repeat)):
            digest.update(np.ascontiguousarray(frequencies, dtype="<i8").tobytes())
            digest.update(int(repeat).to_bytes(4, "little"))
            level = self.level_table(q)
            digest.update(
                b"-" if level is None else np.ascontiguousarray(level, dtype="<i8").tobytes()
            )
        return digest.hexdigest()[:16]

    def level_table(self, plane: int) -> np.ndarray | None:
        """``[LEVEL_CONTEXTS, K]`` conditional frequencies for ``plane``, if it has them."""
        return self.level[plane] if plane < len(self.level) else None

    @classmethod
    def fit(cls, code_batches: Iterable[Tensor], codebook_sizes: Iterable[int]) -> CodeTables:
        """Count codes ``[B, Q, *spatial]`` over batches (e.g. a model's training codes).

        Counts start at one (add-one smoothing), so unseen codes stay cheap enough.
        """
        sizes = [int(k) for k in codebook_sizes]
        counts = [np.ones(k, dtype=np.int64) for k in sizes]
        with_level = [q > 0 and k <= MAX_LEVEL_ALPHABET for q, k in enumerate(sizes)]
        joint = [
            np.zeros((LEVEL_CONTEXTS, k), dtype=np.int64) if w else None
            for k, w in zip(sizes, with_level)
        ]
        same = np.ones(len(sizes), dtype=np.int64)
        pairs = np.full(len(sizes), 2, dtype=np.int64)
        for codes in code_batches:
            codes = codes.detach().cpu().long()
            if codes.dim() < 3 or codes.shape[1] != len(sizes):
                raise ValueError(
                    f"expected codes [B, {len(sizes)}, *spatial], got {tuple(codes.shape)}"
                )
            for q, k in enumerate(sizes):
                plane = codes[:, q]
                counts[q] += torch.bincount(plane.reshape(-1), minlength=k)[:k].numpy()
                same[q] += int((plane[..., 1:] == plane[..., :-1]).sum())
                pairs[q] += plane[..., 1:].numel()
                if joint[q] is not None:
                    context = codes[:, q - 1].reshape(-1) % LEVEL_CONTEXTS
                    pair = context * k + plane.reshape(-1)
                    joint[q] += (
                        torch.bincount(pair, minlength=LEVEL_CONTEXTS * k)
                        .numpy()
                        .reshape(LEVEL_CONTEXTS, k)
                    )
        repeat_total = 1 << REPEAT_PRECISION
        repeat = tuple(
            int(min(max(s * repeat_total // p, 1), repeat_total - 1)) for s, p in zip(same, pairs)
        )
        level = tuple(None if j is None else _smoothed_rows(j, c) for j, c in zip(joint, counts))
        return cls(tuple(quantize_counts(c) for c in counts), repeat, level)

    def to_tensors(self) -> dict[str, Tensor]:
        """Flat tensors for a safetensors file (no pickle)."""
        tensors = {
            f"frequencies.{q}": torch.from_numpy(f.copy()) for q, f in enumerate(self.frequencies)
        }
        tensors["repeat"] = torch.tensor(self.repeat, dtype=torch.int64)
        for q, table in enumerate(self.level):
            if table is not None:
                tensors[f"level.{q}"] = torch.from_numpy(table.astype(np.int32))
        return tensors

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> CodeTables:
        """Inverse of :meth:`to_tensors`, validating what it reads."""
        repeat = tuple(int(v) for v in tensors["repeat"].tolist())
        frequencies = tuple(
            tensors[f"frequencies.{q}"].numpy().astype(np.int64) for q in range(len(repeat))
        )
        level = tuple(
            tensors[f"level.{q}"].numpy().astype(np.int64) if f"level.{q}" in tensors else None
            for q in range(len(repeat))
        )
        for table in [*frequencies, *(t for t in level if t is not None)]:
            if table.min() < 1 or np.any(table.sum(axis=-1) != 1 << PRECISION):
                raise ValueError("invalid frequency table: entries must be >= 1 and sum to 2**24")
        return cls(frequencies, repeat, level)


def _smoothed_rows(joint: np.ndarray, marginal: np.ndarray) -> np.ndarray:
    """Integer tables per context: the context's counts plus ``LEVEL_SMOOTHING`` pseudo-counts
    spread like the plane's marginal, so rare contexts fall back to the marginal. (Float math is
    fine here: fitting runs once, and only the resulting integers are ever coded with.)"""
    prior = marginal / marginal.sum()
    rows = (joint + LEVEL_SMOOTHING * prior) / (joint.sum(axis=1, keepdims=True) + LEVEL_SMOOTHING)
    return np.stack([quantize_counts(np.floor(r * (1 << 30)).astype(np.int64)) for r in rows])
