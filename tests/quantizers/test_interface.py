"""Every quantizer honours the shared interface: shapes, code ranges, round trips, telemetry."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from vqcodec.quantizers import (
    ClusteredVectorQuantizer,
    FiniteScalarQuantizer,
    GroupedQuantizer,
    GumbelQuantizer,
    Quantizer,
    ResidualQuantizer,
    SimVQ,
    VectorQuantizer,
)

DIM = 16
FACTORIES: dict[str, Callable[[], Quantizer]] = {
    "vq_ema_rotation": lambda: VectorQuantizer(DIM, 32),
    "vq_loss_straight_through": lambda: VectorQuantizer(
        DIM, 32, codebook_learning="loss", estimator="straight_through"
    ),
    "vq_cosine_lowdim_kmeans": lambda: VectorQuantizer(
        DIM, 32, codebook_dim=4, cosine=True, kmeans_init=True
    ),
    "cvq": lambda: ClusteredVectorQuantizer(DIM, 32),
    "simvq": lambda: SimVQ(DIM, 32),
    "fsq": lambda: FiniteScalarQuantizer([8, 5, 5, 5], dim=DIM),
    "residual": lambda: ResidualQuantizer(DIM, 32, 3, quantizer_dropout=0.5),
    "grouped": lambda: GroupedQuantizer(DIM, 32, 4),
    "gumbel": lambda: GumbelQuantizer(DIM, 32),
}
SHAPES = {"0d": (5, DIM), "1d": (3, DIM, 11), "2d": (2, DIM, 4, 5)}


@pytest.fixture(params=sorted(FACTORIES))
def quantizer(request: pytest.FixtureRequest) -> Quantizer:
    return FACTORIES[request.param]()


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_shapes_and_code_ranges(quantizer: Quantizer, shape: tuple[int, ...]) -> None:
    z = torch.randn(shape, requires_grad=True)
    out = quantizer(z)
    q = quantizer.num_quantizers
    assert out.z_q.shape == z.shape
    assert out.codes.shape == (shape[0], q, *shape[2:]) and out.codes.dtype == torch.int64
    assert int(out.codes.min()) >= 0 and int(out.codes.max()) < quantizer.codebook_size
    assert out.loss.shape == () and torch.isfinite(out.loss)
    (out.z_q.square().mean() + out.loss).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_decode_of_encode_equals_forward_in_eval(
    quantizer: Quantizer, shape: tuple[int, ...]
) -> None:
    quantizer.train()
    quantizer(torch.randn(shape))  # one training step first, so statistics are not pristine
    quantizer.eval()
    z = torch.randn(shape)
    out = quantizer(z)
    codes = quantizer.encode(z)
    assert torch.equal(codes, out.codes)
    assert torch.equal(quantizer.decode(codes), out.z_q)


def test_telemetry_is_reported(quantizer: Quantizer) -> None:
    out = quantizer(torch.randn(4, DIM, 8))
    usage, perplexity = out.metrics["code_usage"], out.metrics["perplexity"]
    assert 0 < float(usage) <= 1
    assert 1 <= float(perplexity) <= quantizer.codebook_size + 1e-3
    assert not usage.requires_grad and not perplexity.requires_grad


def test_wrong_channel_count_is_a_clear_error(quantizer: Quantizer) -> None:
    with pytest.raises(ValueError, match="expects z of shape"):
        quantizer(torch.randn(2, DIM + 1, 3))


def test_wrong_code_planes_is_a_clear_error(quantizer: Quantizer) -> None:
    with pytest.raises(ValueError):
        quantizer.decode(torch.zeros(2, quantizer.num_quantizers + 1, 3, dtype=torch.int64))
    with pytest.raises(ValueError):
        quantizer.decode(torch.zeros(2, quantizer.num_quantizers, 3))  # float codes


def test_bf16_autocast(quantizer: Quantizer) -> None:
    z = torch.randn(2, DIM, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = quantizer(z)
    assert out.z_q.shape == z.shape and torch.isfinite(out.z_q.float()).all()
    assert torch.isfinite(out.loss)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vq_ema_rotation", "fsq", "residual", "grouped", "simvq"])
def test_search_compiles_without_graph_breaks(name: str) -> None:
    quantizer = FACTORIES[name]().eval()
    z = torch.randn(2, DIM, 7)
    encode = torch.compile(quantizer.encode, fullgraph=True, backend="eager")
    forward = torch.compile(quantizer, fullgraph=True, backend="eager")
    assert torch.equal(encode(z), quantizer.encode(z))
    assert torch.equal(forward(z).z_q, quantizer(z).z_q)


def test_training_forward_compiles() -> None:
    quantizer = VectorQuantizer(DIM, 32, kmeans_init=True)
    compiled = torch.compile(quantizer, backend="eager")
    out = compiled(torch.randn(4, DIM, 8))
    assert out.z_q.shape == (4, DIM, 8) and bool(quantizer.initialised)


def test_grouped_batched_search_matches_per_group_quantizers() -> None:
    grouped = GroupedQuantizer(DIM, 32, 4).eval()
    assert grouped.batched_search
    z = torch.randn(3, DIM, 9)
    per_group = torch.cat(
        [g.encode(chunk) for g, chunk in zip(grouped.groups, z.split(DIM // 4, dim=1))], dim=1
    )
    assert torch.equal(grouped.encode(z), per_group)
    mixed = GroupedQuantizer(
        DIM, 125, 2, factory=lambda d, k: FiniteScalarQuantizer([5, 5, 5], dim=d)
    )
    assert not mixed.batched_search
