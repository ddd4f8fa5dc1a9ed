"""Compile the Gluon (Hopper) search kernel for sm_90 without a GPU, and report what ptxas made.

    python benchmarks/compile_gluon_sm90.py [--d 256] [--block-n 128] [--block-k 128] [--stages 2]
        [--x-buffers 1] [--column-norms]

Prints registers, spills and shared memory per thread block, any ptxas note that the ``wgmma``
products were serialised (which would undo the overlap), and the SASS instruction histogram of
the kernel (the reduction's cost per score shows there). Needs only the Triton wheel (it ships
ptxas and cuobjdump); the GPU driver is replaced by a stand-in that names an sm_90 target.
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import re
import subprocess
import tempfile

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.runtime import driver


class _Sm90Target:
    """Just enough of a driver for Triton to compile (not launch) for an sm_90 GPU."""

    def get_current_target(self) -> GPUTarget:
        return GPUTarget("cuda", 90, 32)

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device: int | None = None) -> int:
        return 0

    def get_device_interface(self):
        return torch.cuda

    def get_active_torch_device(self) -> torch.device:
        return torch.device("cpu")


def compile_kernel(
    n: int,
    k: int,
    d: int,
    block_n: int,
    block_k: int,
    stages: int,
    x_buffers: int = 1,
    column_norms: bool = False,
) -> dict:
    """Compile for these sizes (on a machine without a GPU: the compiled kernel stays in the
    JIT's cache for device 0); returns shared memory, the ptxas report and the SASS."""
    previous = driver._active  # restored as it was: without a GPU there is no default to reset to
    driver.set_active(_Sm90Target())
    try:
        import triton.experimental.gluon.language as gl
        from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

        from vqcodec.kernels import gluon_nearest_code as hopper

        x = torch.zeros(n, d, dtype=torch.bfloat16)
        codebook = torch.zeros(k, d, dtype=torch.bfloat16)
        config = hopper.TileConfig(block_n, block_k, stages)
        d_pad = hopper.padded_dim(d)
        k_pad = (triton.cdiv(k, block_k) + 1) * block_k
        descriptors = [
            TensorDescriptor(
                t, [rows, d], [d, 1], [block, d_pad],
                gl.NVMMASharedLayout.get_default_for([block, d_pad], gl.bfloat16),
            )
            for t, rows, block in ((x, n, block_n), (codebook, k, block_k))
        ]  # fmt: skip
        compiled = hopper._nearest_code_kernel.warmup(
            *descriptors, torch.zeros(k_pad), torch.zeros(n, dtype=torch.int64), n, k, k_pad, 0,
            STAGES=stages, X_BUFFERS=x_buffers, num_warps=config.num_warps,
            COLUMN_NORMS=column_norms, grid=(1,),
        )  # fmt: skip
    finally:
        driver._active = previous
    bin_dir = pathlib.Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    with tempfile.TemporaryDirectory() as tmp:
        ptx = pathlib.Path(tmp) / "kernel.ptx"
        cubin = pathlib.Path(tmp) / "kernel.cubin"
        ptx.write_text(compiled.asm["ptx"])
        report = subprocess.run(
            [bin_dir / "ptxas", "--gpu-name", "sm_90a", "-v", ptx, "-o", cubin],
            capture_output=True, text=True, check=True,
        ).stderr  # fmt: skip
        sass = subprocess.run(
            [bin_dir / "cuobjdump", "-sass", cubin], capture_output=True, text=True, check=True
        ).stdout
    return {"shared": compiled.metadata.shared, "ptxas": report, "sass": sass}


def summary(result: dict) -> dict:
    registers = int(re.search(r"Used (\d+) registers", result["ptxas"]).group(1))
    spills = sum(int(v) for v in re.findall(r"(\d+) bytes spill", result["ptxas"]))
    serialised = "serialized" in result["ptxas"]
    opcodes = collections.Counter(
        match.group(1).split(".")[0]
        for match in re.finditer(
            r"/\*[0-9a-f]{4}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9]*\S*)", result["sass"]
        )
    )
    return {
        "registers": registers,
        "spill_bytes": spills,
        "shared_bytes": result["shared"],
        "wgmma_serialised": serialised,
        "opcodes": opcodes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=65536)
    parser.add_argument("--k", type=int, default=16384)
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--block-n", type=int, default=128)
    parser.add_argument("--block-k", type=int, default=128)
    parser.add_argument("--stages", type=int, default=2)
    parser.add_argument("--x-buffers", type=int, default=1)
    parser.add_argument(
        "--column-norms", action="store_true", help="TileConfig.column_norms (the D = 256 default)"
    )
    args = parser.parse_args()
    result = summary(
        compile_kernel(
            args.n,
            args.k,
            args.d,
            args.block_n,
            args.block_k,
            args.stages,
            args.x_buffers,
            column_norms=args.column_norms,
        )
    )
    print(
        f"registers {result['registers']}, spills {result['spill_bytes']} B, shared "
        f"{result['shared_bytes']} B, wgmma serialised: {result['wgmma_serialised']}"
    )
    print("SASS opcodes:", ", ".join(f"{op} {n}" for op, n in result["opcodes"].most_common(12)))


if __name__ == "__main__":
    main()
