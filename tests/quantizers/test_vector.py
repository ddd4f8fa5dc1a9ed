"""VectorQuantizer: agreement with vector-quantize-pytorch, EMA, k-means and dead codes."""

from __future__ import annotations

import pytest
import torch
from vector_quantize_pytorch import VectorQuantize

from vqcodec.quantizers import VectorQuantizer
from vqcodec.quantizers.kmeans import kmeans


def test_nearest_indices_agree_with_vector_quantize_pytorch() -> None:
    reference = VectorQuantize(dim=32, codebook_size=256).eval()
    ours = VectorQuantizer(32, 256).eval()
    ours.codebook.copy_(reference._codebook.embed[0])
    x = torch.randn(4, 500, 32)
    _, ref_indices, _ = reference(x)
    indices = ours.encode(x.transpose(1, 2))[:, 0]
    differ = indices != ref_indices
    # Float rounding may split a near-tie differently; any disagreement must be a tie.
    assert differ.float().mean() < 1e-3
    codebook = ours.codebook
    ours_d = (x - codebook[indices]).pow(2).sum(-1)
    ref_d = (x - codebook[ref_indices]).pow(2).sum(-1)
    assert torch.allclose(ours_d[differ], ref_d[differ], rtol=1e-5)


def test_ema_statistics_change_only_in_training() -> None:
    vq = VectorQuantizer(8, 16)
    z = torch.randn(4, 8, 20)
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    vq.eval()
    vq(z)
    assert all(torch.equal(before[k], v) for k, v in vq.state_dict().items())
    vq.train()
    vq(z)
    assert not torch.equal(before["codebook"], vq.codebook)
    assert not torch.equal(before["ema_count"], vq.ema_count)


def test_ema_moves_codes_towards_their_assigned_means() -> None:
    vq = VectorQuantizer(4, 8, decay=0.0, dead_code_threshold=0)  # decay 0: codebook = batch means
    z = torch.randn(64, 4)
    indices = vq.encode(z)[:, 0]
    vq(z)
    for k in indices.unique():
        assert torch.allclose(vq.codebook[k], z[indices == k].mean(0), atol=1e-5)


def test_dead_codes_are_revived_from_a_collapsed_codebook() -> None:
    vq = VectorQuantizer(8, 32, decay=0.9)
    with torch.no_grad():
        vq.codebook.copy_(torch.zeros(32, 8) + torch.randn(1, 8))  # every code identical
        vq.ema_sum.copy_(vq.codebook)
    data = torch.randn(512, 8)
    vq.eval()
    start = float(vq(data).metrics["code_usage"])
    vq.train()
    for _ in range(30):
        vq(data[torch.randperm(512)[:256]])
    vq.eval()
    end = float(vq(data).metrics["code_usage"])
    assert start == pytest.approx(1 / 32)
    assert end > 0.9


def test_revived_code_statistics_are_reset_with_it() -> None:
    vq = VectorQuantizer(4, 8, decay=0.99, dead_code_threshold=0.5)
    with torch.no_grad():
        vq.codebook[1:] += 100.0  # only code 0 is reachable: the rest are dead
        vq.ema_sum.copy_(vq.codebook)
    replaced = vq(torch.randn(64, 4)).metrics["dead_codes"]
    assert float(replaced) == 7  # training: the codes replaced in this step
    vq.eval()
    assert float(vq(torch.randn(64, 4)).metrics["dead_codes"]) == 0  # none dead any more
    dead = torch.arange(1, 8)
    # Each revived code's EMA mean equals its new value, so the next update cannot pull it back.
    means = vq.ema_sum[dead] / vq.ema_count[dead, None]
    assert torch.allclose(means, vq.codebook[dead], atol=1e-5)
    assert float(vq.codebook[dead].abs().max()) < 50


def test_kmeans_initialisation_on_first_training_batch() -> None:
    centres = torch.randn(8, 4) * 10
    data = centres.repeat(64, 1) + 0.01 * torch.randn(512, 4)
    vq = VectorQuantizer(4, 8, kmeans_init=True, dead_code_threshold=0)
    assert not bool(vq.initialised)
    random_error = float(torch.cdist(data, vq.codebook).min(dim=1).values.pow(2).mean())
    vq(data)
    assert bool(vq.initialised)
    error = float(torch.cdist(data, vq.codebook).min(dim=1).values.pow(2).mean())
    assert error < 0.05 * random_error
    # The EMA statistics agree with the new codebook.
    assert torch.allclose(vq.ema_sum / vq.ema_count[:, None], vq.codebook, atol=1e-4)


def test_loading_an_uninitialised_state_runs_kmeans_again() -> None:
    # The flag is cached on the host once set (no GPU sync per step); a loaded state that says
    # "not initialised" must still trigger k-means on the next training batch.
    data = torch.randn(8, 4).mul(10).repeat(64, 1) + 0.01 * torch.randn(512, 4)
    fresh = VectorQuantizer(4, 8, kmeans_init=True, dead_code_threshold=0).state_dict()
    vq = VectorQuantizer(4, 8, kmeans_init=True, dead_code_threshold=0)
    vq(torch.randn(512, 4))
    assert bool(vq.initialised)
    vq.load_state_dict(fresh)
    assert not bool(vq.initialised)
    torch.manual_seed(1)
    vq(data)
    assert bool(vq.initialised)
    reference = VectorQuantizer(4, 8, kmeans_init=True, dead_code_threshold=0)
    reference.load_state_dict(fresh)
    torch.manual_seed(1)
    reference(data)  # a quantizer that never trained: the same k-means, the same codebook
    torch.testing.assert_close(vq.codebook, reference.codebook)


def test_lloyd_iterations_reduce_the_error() -> None:
    data = torch.randn(2000, 6)

    def error(iters: int) -> float:
        centroids, sizes = kmeans(data, 32, iters, generator=torch.Generator().manual_seed(1))
        assert int(sizes.sum()) == 2000 or iters == 0
        return float(torch.cdist(data, centroids).min(dim=1).values.pow(2).mean())

    assert error(10) < 0.8 * error(0)


def test_cosine_lookup_emits_unit_codes_and_lowdim_projection() -> None:
    vq = VectorQuantizer(16, 32, codebook_dim=4, cosine=True).eval()
    z = torch.randn(3, 16, 9)
    assert vq.project_in.weight.shape == (4, 16)
    codes = vq.encode(z)
    unit = vq.lookup_codebook()[codes.flatten()]
    assert torch.allclose(unit.norm(dim=-1), torch.ones(unit.shape[0]), atol=1e-5)


def test_loss_learned_codebook_gets_gradient_only_from_codebook_term() -> None:
    vq = VectorQuantizer(8, 16, codebook_learning="loss")
    z = torch.randn(2, 8, 10, requires_grad=True)
    out = vq(z)
    out.z_q.sum().backward(retain_graph=True)
    assert vq.codebook.grad is None or torch.count_nonzero(vq.codebook.grad) == 0
    out.loss.backward()
    assert torch.count_nonzero(vq.codebook.grad) > 0


def test_unknown_options_are_rejected() -> None:
    with pytest.raises(ValueError):
        VectorQuantizer(8, 16, codebook_learning="magic")
    with pytest.raises(ValueError):
        VectorQuantizer(8, 16, estimator="magic")
