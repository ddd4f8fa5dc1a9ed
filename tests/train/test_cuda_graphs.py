"""``run.cuda_graphs``: refused where a captured step cannot follow the config; on a GPU, graphed
training follows eager training step for step, across evaluations, checkpoints and resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.train.test_loop import SMOKE, smoke
from vqcodec.train.graphs import WARMUP_STEPS
from vqcodec.train.loop import train


@pytest.mark.parametrize(
    "setting",
    ["run.compile=true", "run.gradient_accumulation=2", "adversarial.weight=1"],
)
def test_settings_a_graph_cannot_follow_are_one_line_and_exit_2(
    setting: str, audio_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from vqcodec.train.__main__ import main

    code = main([str(SMOKE), "--set", f'data.train=["{audio_folder}"]', "--set",
                 f"run.output_dir={tmp_path / 'run'}", "--set", "run.cuda_graphs=true",
                 "--set", setting])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vqcodec train: run.cuda_graphs: ") and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_the_learning_rate_becomes_one_tensor_and_back() -> None:
    from vqcodec.train.loop import learning_rates_on_device

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=1e-3)
    learning_rates_on_device(optimizer, True)
    first = optimizer.param_groups[0]["lr"]
    assert isinstance(first, torch.Tensor) and float(first) == pytest.approx(1e-3)
    learning_rates_on_device(optimizer, True)  # a second graphed step function
    assert optimizer.param_groups[0]["lr"] is first  # what an earlier capture reads
    learning_rates_on_device(optimizer, False)
    assert type(optimizer.param_groups[0]["lr"]) is float


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU behaviour")
def test_on_a_cpu_the_setting_changes_nothing(audio_folder: Path, tmp_path: Path) -> None:
    settings = ("run.steps=3", "run.eval_every=10")
    eager = train(smoke(audio_folder, tmp_path / "eager", *settings))
    graphed = train(smoke(audio_folder, tmp_path / "graphed", *settings, "run.cuda_graphs=true"))
    assert graphed.losses == eager.losses


@pytest.mark.gpu
def test_graphed_training_follows_eager_training(audio_folder: Path, tmp_path: Path) -> None:
    steps = 30  # eleven eager steps, the capture, replays; then resumed from step 15
    # Quantizer dropout off: a replayed graph draws its random numbers differently. An
    # evaluation and a checkpoint in the middle of the replays.
    settings = (f"run.steps={steps}", "model.quantizer_dropout=0", "run.mixed_precision=bf16",
                "run.eval_every=15", "run.save_every=15", "run.check_replicas_every=5")  # fmt: skip
    eager = train(smoke(audio_folder, tmp_path / "eager", *settings))
    graphed = train(smoke(audio_folder, tmp_path / "graphed", *settings, "run.cuda_graphs=true"))
    # The same first step; later the tiny model amplifies rounding differences (a fused update
    # reading its rate from a tensor, atomic sums), so the runs are compared as trainings.
    assert graphed.losses[1] == pytest.approx(eager.losses[1], rel=1e-3)

    def late(result) -> float:
        return sum(result.losses[s] for s in range(steps - 4, steps + 1)) / 5

    assert late(graphed) < 0.8 * graphed.losses[1]
    assert late(graphed) == pytest.approx(late(eager), rel=0.15)
    assert '"dev/' in (tmp_path / "graphed" / "log.jsonl").read_text()
    # Resumed from the middle checkpoint, graphed (a new capture) and eager: the same first
    # resumed step, then training as before.
    for graphs in ("true", "false"):
        resumed = train(
            smoke(audio_folder, tmp_path / f"resumed_{graphs}", *settings,
                  f"run.cuda_graphs={graphs}"),
            resume=tmp_path / "graphed" / "checkpoints" / "step_15",
        )  # fmt: skip
        assert sorted(resumed.losses) == list(range(16, steps + 1))
        assert resumed.losses[16] == pytest.approx(graphed.losses[16], rel=1e-3)
        assert late(resumed) == pytest.approx(late(graphed), rel=0.15)


@pytest.mark.gpu
def test_replays_read_the_new_batch_and_the_current_learning_rate(
    audio_folder: Path, tmp_path: Path
) -> None:
    from vqcodec.train.graphs import GraphedTrainStep
    from vqcodec.train.loop import _batches, prepare

    prepared = prepare(smoke(audio_folder, tmp_path / "run", "model.quantizer_dropout=0",
                             "run.cuda_graphs=true"))  # fmt: skip
    step_function = GraphedTrainStep(prepared)
    batches = _batches(prepared.loader, prepared.accelerator, 0)
    for step in range(WARMUP_STEPS + 1):
        step_function(next(batches), step)
    assert step_function.captured
    model = prepared.model
    lr = prepared.optimizer.param_groups[0]["lr"]
    assert isinstance(lr, torch.Tensor) and lr.device.type == "cuda"

    def loss_and_weights(x: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
        _, terms = step_function(x, 99)
        return float(terms.total.detach()), [p.detach().clone() for p in model.parameters()]

    x = next(batches)
    lr.fill_(0.0)  # the captured update must read this: no parameter may move
    before = [p.detach().clone() for p in model.parameters()]
    loss_x, after = loss_and_weights(x)
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    loss_quiet, _ = loss_and_weights(0.1 * x)  # a new batch into the captured input
    assert not math.isclose(loss_quiet, loss_x, rel_tol=0.05)
    loss_again, _ = loss_and_weights(x)  # only the EMA codebooks moved meanwhile
    assert loss_again == pytest.approx(loss_x, rel=0.05)
    lr.fill_(1e-3)
    _, moved = loss_and_weights(x)
    assert any(not torch.equal(a, b) for a, b in zip(after, moved))


@pytest.mark.gpu
def test_graphed_image_training_follows_eager_training(image_folder: Path, tmp_path: Path) -> None:
    from vqcodec.train.config import load_train_config

    steps = 30
    configs = Path(__file__).parents[2] / "configs"

    def run(name: str, *extra: str):
        return train(
            load_train_config(
                configs / "image-smoke.json",
                [f'data.train=["{image_folder}"]', f'data.dev=["{image_folder}"]',
                 f"run.output_dir={tmp_path / name}", f"run.steps={steps}",
                 "run.eval_every=15", "model.quantizer_dropout=0", *extra],
            )
        )  # fmt: skip

    eager = run("eager")
    graphed = run("graphed", "run.cuda_graphs=true")
    assert graphed.losses[1] == pytest.approx(eager.losses[1], rel=1e-3)

    def late(result) -> float:
        return sum(result.losses[s] for s in range(steps - 4, steps + 1)) / 5

    assert late(graphed) < graphed.losses[1]
    assert late(graphed) == pytest.approx(late(eager), rel=0.15)
