"""The Hopper kernel compiled for sm_90 on a machine without a GPU: what ptxas made of it.

Runs where CI runs (no GPU): Triton's wheel carries ptxas. The GPU tests check its answers; these
check that the compiled kernel keeps the properties its speed rests on.
"""

from __future__ import annotations

import importlib.util
import pathlib

import pytest
import torch

pytest.importorskip("triton.experimental.gluon", reason="this Triton has no Gluon")
if torch.cuda.is_available():
    pytest.skip(
        "a GPU is present: the GPU tests compile and run the kernel", allow_module_level=True
    )

_script = pathlib.Path(__file__).parents[2] / "benchmarks" / "compile_gluon_sm90.py"
_spec = importlib.util.spec_from_file_location("compile_gluon_sm90", _script)
compile_gluon_sm90 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compile_gluon_sm90)


@pytest.mark.parametrize("d,k", [(8, 1024), (64, 1024), (128, 1024), (128, 16384), (256, 16384)])
def test_default_tiles_compile_without_spills_or_serialised_products(d: int, k: int) -> None:
    from vqcodec.kernels import gluon_nearest_code as hopper

    config = hopper.default_config(d, k)
    result = compile_gluon_sm90.summary(
        compile_gluon_sm90.compile_kernel(
            4096,
            k,
            d,
            config.block_n,
            config.block_k,
            config.stages,
            config.x_buffers,
            column_norms=config.column_norms,
        )
    )
    assert result["spill_bytes"] == 0
    assert not result["wgmma_serialised"]  # the products stay asynchronous: the overlap holds
    assert result["shared_bytes"] <= 227 * 1024
    # One minimum and one bit operation per score: the columns stay in registers (folded into
    # immediates they would cost a second bit operation per score).
    opcodes = result["opcodes"]
    assert opcodes["HGMMA"] > 0
    assert opcodes["LOP3"] <= 1.3 * opcodes["FMNMX"]
