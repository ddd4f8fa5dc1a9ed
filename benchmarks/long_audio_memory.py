"""Peak memory and time of ``vqcodec encode`` and ``vqcodec decode`` on one long audio file.

    python benchmarks/long_audio_memory.py [--minutes 60] [--rate 24000]

Writes a synthetic speech-like mono FLAC of the given length to a temporary folder, then runs
the CLI on it in child processes and reports each one's peak resident memory (``/usr/bin/time``)
and wall time. The file itself is the baseline a decoder must hold (the decoded samples).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile


def write_signal(path: Path, minutes: float, rate: int) -> None:
    """Harmonics with a wandering pitch plus noise, written one minute at a time."""
    rng = np.random.default_rng(0)
    phase = 0.0
    with soundfile.SoundFile(path, "w", rate, 1, format="FLAC", subtype="PCM_16") as out:
        for minute in range(int(np.ceil(minutes))):
            n = int(min(60, (minutes - minute) * 60) * rate)
            t = minute * 60 + np.arange(n) / rate
            pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
            phases = phase + 2 * np.pi * np.cumsum(pitch) / rate
            phase = phases[-1]
            voice = sum(np.sin(k * phases) / k for k in range(1, 12))
            out.write((0.1 * voice + 0.05 * rng.standard_normal(n)).astype(np.float32))


def measure(command: list[str]) -> tuple[float, float]:
    """(peak resident MiB, wall seconds) of ``command``."""
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    peak_kib = int(result.stderr.strip().splitlines()[-1])
    return peak_kib / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=24000)
    args = parser.parse_args()
    vqcodec = [sys.executable, "-m", "vqcodec.cli"]
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "long.flac"
        write_signal(source, args.minutes, args.rate)
        samples_mib = args.minutes * 60 * args.rate * 4 / 2**20
        print(f"{args.minutes:g} min mono at {args.rate} Hz ({samples_mib:.0f} MiB as float32)")
        print("| step | peak memory MiB | wall s |")
        print("|---|---:|---:|")
        baseline = measure([sys.executable, "-c", "import vqcodec, torch"])
        print(f"| import vqcodec and torch only | {baseline[0]:.0f} | {baseline[1]:.1f} |")
        coded = Path(folder) / "long.vqc"
        peak, wall = measure([*vqcodec, "encode", str(source), "-o", str(coded)])
        print(f"| vqcodec encode | {peak:.0f} | {wall:.1f} |")
        peak, wall = measure([*vqcodec, "decode", str(coded), "-o", str(Path(folder) / "out.wav")])
        print(f"| vqcodec decode | {peak:.0f} | {wall:.1f} |")
        print(f"\n.vqc size: {coded.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
