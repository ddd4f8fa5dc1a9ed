from __future__ import annotations

import json
from pathlib import Path

import pytest

from vqcodec.config import ConfigError, load_config
from vqcodec.train.__main__ import main as train_main
from vqcodec.train.config import TrainConfig


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    return path


def test_overrides_are_typed(tmp_path: Path) -> None:
    path = write(tmp_path, {"run": {"steps": 10}})
    config = load_config(
        TrainConfig,
        path,
        [
            "optim.lr=0.001",
            "run.steps=20",
            'data.train=["x", "y"]',
            "model.strides=[2, 4]",
            "run.mixed_precision=bf16",
        ],
    )
    assert config.optim.lr == 0.001 and config.run.steps == 20
    assert config.data.train == ("x", "y") and config.model.strides == (2, 4)


@pytest.mark.parametrize(
    "override,match",
    [
        ("optim.lrr=1", "unknown config key"),
        ("run.steps=ten", "expected int"),
        ("run.mixed_precision=fp8", "not one of"),
        ("run.steps", "key=value"),
    ],
)
def test_bad_overrides_name_the_key(tmp_path: Path, override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(TrainConfig, write(tmp_path, {}), [override])


def test_train_cli_reports_config_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_main([str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err
