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


@pytest.mark.parametrize(
    "d,k,rows",
    [
        (8, 1024, 2**18),
        (32, 1024, 2**18),
        (64, 1024, 2**16),
        (128, 1024, 2**16),
        (128, 16384, 2**16),
        (256, 16384, 2**16),
        (8, 1024, 4096),  # few (row, code) pairs: the plain kernel
        (64, 1024, 4096),
        (128, 1024, 4096),
        (128, 16384, 2048),
    ],
)
def test_default_tiles_compile_without_spills_or_serialised_products(
    d: int, k: int, rows: int
) -> None:
    from vqcodec.kernels import gluon_nearest_code as hopper

    config = hopper.default_config(d, k, rows)
    result = compile_gluon_sm90.summary(compile_gluon_sm90.compile_kernel(4096, k, d, config))
    if config.warp_specialized:
        # One pointer saved before the partitions start and read back once a row tile (SASS
        # checked at D = 128); never inside the tile loops.
        assert result["spill_bytes"] <= 64
    else:
        assert result["spill_bytes"] == 0
    assert result["spills_in_inner_loops"] == 0
    assert not result["wgmma_serialised"]  # the products stay asynchronous: the overlap holds
    assert result["shared_bytes"] <= 227 * 1024
    # One minimum and one bit operation per score: the columns stay in registers (folded into
    # immediates they would cost a second bit operation per score).
    opcodes = result["opcodes"]
    assert opcodes["HGMMA"] > 0
    assert opcodes["LOP3"] <= 1.3 * opcodes["FMNMX"]


def test_the_spill_count_sees_local_memory_inside_a_loop() -> None:
    sass = "\n".join(
        [
            "/*0000*/ MOV R1, R2 ;",
            "/*0010*/ LDL.64 R4, [R1] ;",  # before the loop: not counted
            "/*0020*/ FADD R3, R3, R4 ;",
            "/*0030*/ STL [R1], R3 ;",  # in the loop
            "/*0040*/ @P0 BRA 0x20 ;",
        ]
    )
    assert compile_gluon_sm90._spills_in_inner_loops(sass) == 1
