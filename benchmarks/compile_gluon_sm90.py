"""Compile the Gluon (Hopper) search kernel for sm_90 without a GPU, and report what ptxas made.

    python benchmarks/compile_gluon_sm90.py [--d 256] [--block-n 128] [--block-k 128] [--stages 2]
        [--x-buffers 1] [--column-norms] [--warp-specialized [--norms-in-product]]

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


def compile_kernel(n: int, k: int, d: int, config) -> dict:
    """Compile for these sizes and ``config`` (a ``TileConfig``; on a machine without a GPU: the
    compiled kernel stays in the JIT's cache for device 0); returns shared memory, the ptxas
    report and the SASS."""
    previous = driver._active  # restored as it was: without a GPU there is no default to reset to
    driver.set_active(_Sm90Target())
    try:
        import triton.experimental.gluon.language as gl
        from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

        from vqcodec.kernels import gluon_nearest_code as hopper

        x = torch.zeros(n, d, dtype=torch.bfloat16)
        codebook = torch.zeros(k, d, dtype=torch.bfloat16)
        d_pad = hopper.padded_dim(d)
        block_k = config.block_k
        num_tiles = hopper.searched_tiles(k, config)
        k_pad = (num_tiles + 1) * block_k  # as PreparedSearch.build pads
        x_rows = hopper.ROWS_PER_CONSUMER if config.warp_specialized else config.block_n
        descriptors = [
            TensorDescriptor(
                t, [rows, d], [d, 1], [block, d_pad],
                gl.NVMMASharedLayout.get_default_for([block, d_pad], gl.bfloat16),
            )
            for t, rows, block in ((x, n, x_rows), (codebook, k, block_k))
        ]  # fmt: skip
        # With the norms in the product the kernel reads the terms table, not the half-norms.
        half_norms = None if config.norms_in_product else torch.zeros(k_pad)
        tensors = (*descriptors, half_norms, torch.zeros(n, dtype=torch.int64))
        if config.warp_specialized:
            terms_desc = None
            if config.norms_in_product:
                block = [block_k, hopper.TERMS_WIDTH]
                terms_desc = TensorDescriptor(
                    torch.zeros(k_pad, hopper.TERMS_WIDTH, dtype=torch.bfloat16),
                    [k_pad, hopper.TERMS_WIDTH], [hopper.TERMS_WIDTH, 1], block,
                    gl.NVMMASharedLayout.get_default_for(block, gl.bfloat16),
                )  # fmt: skip
            compiled = hopper._nearest_code_ws_kernel.warmup(
                *tensors, n, k, k_pad, num_tiles, 0, terms_desc,
                STAGES=config.stages, X_BUFFERS=config.x_buffers,
                CONSUMER_REGISTERS=hopper.CONSUMER_REGISTERS,
                NORMS_IN_PRODUCT=config.norms_in_product, num_warps=config.num_warps,
                maxnreg=hopper.WS_MAXNREG, grid=(1,),
            )  # fmt: skip
        else:
            compiled = hopper._nearest_code_kernel.warmup(
                *tensors, n, k, k_pad, 0,
                STAGES=config.stages, X_BUFFERS=config.x_buffers, num_warps=config.num_warps,
                COLUMN_NORMS=config.column_norms, grid=(1,),
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


def _spills_in_inner_loops(sass: str) -> int:
    """Local-memory loads and stores inside innermost loops (the tile loops): a backward branch
    marks a loop from its target to itself; innermost loops contain no other."""
    address = re.compile(r"/\*([0-9a-f]{4,})\*/")
    lines = [
        (int(m.group(1), 16), line) for line in sass.splitlines() if (m := address.search(line))
    ]
    loops = []
    for at, line in lines:
        branch = re.search(r"\bBRA (0x[0-9a-f]+)", line)
        if branch and int(branch.group(1), 16) < at:
            loops.append((int(branch.group(1), 16), at))
    inner = [
        (start, end)
        for start, end in loops
        if not any(start < s2 and e2 < end for s2, e2 in loops if (s2, e2) != (start, end))
    ]
    return sum(
        1
        for at, line in lines
        if re.search(r"\b(LDL|STL)\b", line) and any(s <= at <= e for s, e in inner)
    )


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
        "spills_in_inner_loops": _spills_in_inner_loops(result["sass"]),
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
    parser.add_argument(
        "--x-buffers", type=int, default=None, help="row buffers (default 1; 2 warp-specialised)"
    )
    parser.add_argument(
        "--column-norms", action="store_true", help="TileConfig.column_norms (the D = 256 default)"
    )
    parser.add_argument(
        "--warp-specialized", action="store_true", help="the warp-specialised kernel"
    )
    parser.add_argument(
        "--norms-in-product", action="store_true", help="TileConfig.norms_in_product"
    )
    args = parser.parse_args()
    from vqcodec.kernels.gluon_nearest_code import TileConfig

    config = TileConfig(
        args.block_n, args.block_k, args.stages,
        x_buffers=args.x_buffers or (2 if args.warp_specialized else 1),
        column_norms=args.column_norms, warp_specialized=args.warp_specialized,
        norms_in_product=args.norms_in_product,
    )  # fmt: skip
    result = summary(compile_kernel(args.n, args.k, args.d, config))
    print(
        f"registers {result['registers']}, spills {result['spill_bytes']} B "
        f"({result['spills_in_inner_loops']} in the tile loops), shared "
        f"{result['shared_bytes']} B, wgmma serialised: {result['wgmma_serialised']}"
    )
    print("SASS opcodes:", ", ".join(f"{op} {n}" for op, n in result["opcodes"].most_common(12)))


if __name__ == "__main__":
    main()
