"""What every benchmark prints first: the CPU (model, bf16 flags), torch and its thread count, and the
machine's matmul ceilings measured in this process. A module, imported by the scripts beside it.

Ceilings are measured, never assumed: a 256-wide matmul (the width of the networks), (M, 256) x (256, 256)
with M = 256 (a training minibatch) and M = 2,500 (an evaluation batch: 50 envs x 50 candidates), in
float32 and in bfloat16, on the current thread count. ``fraction`` turns a measured FLOP rate into a
share of a ceiling.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

import torch

FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")


def cpu_model() -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo (Linux); (platform.processor(), empty set) elsewhere."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor() or "unknown", set()
    first: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        first.setdefault(key.strip(), value.strip())
    model = first.get("model name", "unknown")
    if "cpu family" in first:
        model += f" (family {first['cpu family']}, model {first.get('model', '?')})"
    flags = set(first.get("flags", "").split())
    return model, flags


@dataclass(frozen=True)
class Ceilings:
    """GFLOP/s of (M, 256) x (256, 256) matmuls, float32 and bfloat16, M = 256 and 2,500."""

    fp32_256: float
    bf16_256: float
    fp32_2500: float
    bf16_2500: float

    def get(self, precision: str, rows: int = 256) -> float:
        return getattr(self, f"{precision}_{2500 if rows > 1000 else 256}")


def clock(device: str = "cpu"):
    """The benchmarks' timer: CPU time of this process on a one-thread CPU run (what the work cost, whatever
    else the shared machine runs: wall-clock figures there vary by 2-5x with the other jobs), else wall time."""
    return time.process_time if device == "cpu" and torch.get_num_threads() == 1 else time.perf_counter


def clock_name(device: str = "cpu") -> str:
    return "CPU time (1 thread)" if clock(device) is time.process_time else "wall time"


def matmul_gflops(rows: int, dtype: torch.dtype, device: str = "cpu", seconds: float = 0.3) -> float:
    """Best-of-3 GFLOP/s of (rows, 256) x (256, 256) in ``dtype``, on ``clock(device)``."""
    now = clock(device)
    a = torch.randn(rows, 256, device=device).to(dtype)
    b = torch.randn(256, 256, device=device).to(dtype)
    flops = 2 * rows * 256 * 256
    for _ in range(3):
        a @ b
    if device != "cpu":
        torch.cuda.synchronize()
    best = 0.0
    for _ in range(3):
        n, t0 = 0, now()
        while now() - t0 < seconds / 3:
            a @ b
            n += 1
        if device != "cpu":
            torch.cuda.synchronize()
        best = max(best, flops * n / (now() - t0) / 1e9)
    return best


def measure_ceilings(device: str = "cpu") -> Ceilings:
    """All four ceilings on ``device`` with the current thread count."""
    return Ceilings(matmul_gflops(256, torch.float32, device), matmul_gflops(256, torch.bfloat16, device),
                    matmul_gflops(2500, torch.float32, device), matmul_gflops(2500, torch.bfloat16, device))


def describe_machine(ceilings: Ceilings | None = None) -> str:
    """Lines naming the CPU, its bf16 flags, torch, the thread count and (if given) the ceilings."""
    model, flags = cpu_model()
    has = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in FLAGS)
    lines = [f"CPU: {model}; {os.cpu_count()} logical CPUs; {has}",
             f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()} kernels), "
             f"threads {torch.get_num_threads()}"]
    if torch.cuda.is_available():
        lines.append(f"GPU: {torch.cuda.get_device_name()}")
    if ceilings is not None:
        lines.append(f"matmul ceilings (M x 256 x 256, measured now on {clock_name()}, GFLOP/s): fp32 "
                     f"{ceilings.fp32_256:.0f} (M=256) / {ceilings.fp32_2500:.0f} (M=2500); bf16 {ceilings.bf16_256:.0f} / "
                     f"{ceilings.bf16_2500:.0f}")
    return "\n".join(lines)
