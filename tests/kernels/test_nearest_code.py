from __future__ import annotations

import pytest
import torch

import vqcodec.kernels.reference as reference_module
from vqcodec.kernels import nearest_code, nearest_code_reference


def brute_force(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Float64 distances, the truth the float32 reference is measured against."""
    return torch.cdist(x.double(), codebook.double()).pow(2)


@pytest.mark.parametrize("n,k,d", [(1, 1, 1), (7, 3, 5), (300, 129, 17), (1000, 1024, 64)])
def test_picks_a_nearest_code(n: int, k: int, d: int) -> None:
    x, codebook = torch.randn(n, d), torch.randn(k, d)
    idx = nearest_code(x, codebook)
    assert idx.shape == (n,) and idx.dtype == torch.int64
    assert int(idx.min()) >= 0 and int(idx.max()) < k
    dist = brute_force(x, codebook)
    chosen = dist.gather(1, idx[:, None]).squeeze(1)
    best = dist.min(dim=1).values
    # float32 accumulation: the chosen code is nearest up to float32 rounding of the distances.
    assert torch.all(chosen - best <= 1e-4 * (1 + best))


def test_integer_inputs_give_exact_indices_and_lowest_index_ties() -> None:
    x = torch.randint(-3, 4, (500, 6)).float()
    codebook = torch.randint(-3, 4, (40, 6)).float()
    codebook[20:] = codebook[:20]  # every code appears twice: each tie must pick the first copy
    idx = nearest_code(x, codebook)
    dist = brute_force(x, codebook)
    expected = dist.argmin(dim=1)  # torch argmin returns the first minimum
    assert torch.equal(idx, expected)
    assert int(idx.max()) < 20


def test_chunking_gives_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    x, codebook = torch.randn(1000, 8), torch.randn(50, 8)
    whole = nearest_code_reference(x, codebook)
    monkeypatch.setattr(reference_module, "_MAX_CHUNK_ELEMENTS", 50 * 7)  # 7-row chunks
    assert torch.equal(nearest_code_reference(x, codebook), whole)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_accumulate_in_float32(dtype: torch.dtype) -> None:
    x, codebook = torch.randn(200, 32).to(dtype), torch.randn(64, 32).to(dtype)
    idx = nearest_code(x, codebook)
    assert torch.equal(idx, nearest_code(x.float(), codebook.float()))


def test_batched_groups_match_per_group_calls() -> None:
    x, codebook = torch.randn(3, 100, 8), torch.randn(3, 20, 8)
    idx = nearest_code(x, codebook)
    assert idx.shape == (3, 100)
    for g in range(3):
        assert torch.equal(idx[g], nearest_code(x[g], codebook[g]))


def test_non_contiguous_inputs() -> None:
    x, codebook = torch.randn(16, 50), torch.randn(16, 30)
    xt, cbt = x.T, codebook.T  # [50, 16], [30, 16], both non-contiguous
    assert torch.equal(nearest_code(xt, cbt), nearest_code(xt.contiguous(), cbt.contiguous()))


def test_empty_rows() -> None:
    assert nearest_code(torch.randn(0, 4), torch.randn(3, 4)).shape == (0,)


@pytest.mark.parametrize(
    "x,codebook,error",
    [
        (torch.randn(4, 3), torch.randn(5, 4), ValueError),
        (torch.randn(4), torch.randn(5, 4), ValueError),
        (torch.randn(2, 4, 3), torch.randn(3, 5, 3), ValueError),
        (torch.randn(4, 3), torch.randn(0, 3), ValueError),
        (torch.ones(4, 3, dtype=torch.int64), torch.ones(5, 3, dtype=torch.int64), TypeError),
    ],
)
def test_bad_inputs_raise_readable_errors(
    x: torch.Tensor, codebook: torch.Tensor, error: type
) -> None:
    with pytest.raises(error):
        nearest_code(x, codebook)


def test_custom_op_passes_opcheck() -> None:
    op = torch.ops.vqcodec.nearest_code.default
    torch.library.opcheck(op, (torch.randn(33, 7), torch.randn(10, 7), False))
    torch.library.opcheck(op, (torch.randn(2, 33, 7), torch.randn(2, 10, 7), True))


def test_compiles_without_graph_breaks() -> None:
    fn = torch.compile(lambda x, c: nearest_code(x * 2.0, c), fullgraph=True, backend="eager")
    x, codebook = torch.randn(64, 8), torch.randn(16, 8)
    assert torch.equal(fn(x, codebook), nearest_code(x * 2.0, codebook))


def test_eager_calls_skip_the_dispatcher_but_agree_with_the_op(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import vqcodec.kernels.op as op_module

    x, codebook = torch.randn(200, 12), torch.randn(50, 12)
    through_op = torch.ops.vqcodec.nearest_code.default(x, codebook, False)
    assert torch.equal(nearest_code(x, codebook), through_op)
    # The eager path really bypasses the op: a broken op does not change its answer ...
    monkeypatch.setattr(op_module, "_nearest_code_op", lambda *args: None)
    assert torch.equal(nearest_code(x, codebook), through_op)
    # ... while inside torch.compile the op is what runs.
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert nearest_code(x, codebook) is None
