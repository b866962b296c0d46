"""The machine a benchmark ran on, and its peak: a 2048² matrix product measured in the same run.

Shared by ``bench_pseudo_labels.py`` and ``bench_registration.py``. This machine family is shared and noisy, so
absolute times move by a factor of several between runs; a throughput stated as a fraction of the same run's matmul
throughput (fp32 and bf16) carries over between runs and machines of a class.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import time

import torch

MATMUL_N = 2048


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: str = "cpu") -> dict:
    """Date (UTC), CPU, threads, CPU affinity (``taskset``), ``OMP_NUM_THREADS``, device, torch, load average."""
    from echo_utils.registration.inference import native_bfloat16

    dev = torch.device(device)
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu_model(),
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cores_visible": os.cpu_count(),
        "native_bfloat16": native_bfloat16(dev),
        "torch": torch.__version__,
        "load_average_1min_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def matmul_gflops(dtype: torch.dtype, device: str = "cpu", seconds: float = 1.5, n: int = MATMUL_N) -> tuple:
    """GFLOP/s of ``n x n @ n x n`` (``2 n^3`` FLOP) over repeated products for about ``seconds``: the best by wall
    time, and by process CPU time times the torch threads (what an idle machine would give; see :func:`ratios`)."""
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=dev, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=dev, dtype=dtype)
    a @ b
    sync()
    best, best_cpu, t_end = 0.0, 0.0, time.perf_counter() + seconds
    threads = torch.get_num_threads() if dev.type == "cpu" else 1
    while time.perf_counter() < t_end:
        t0, c0 = time.perf_counter(), time.process_time()
        a @ b
        sync()
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
        if dev.type == "cpu":
            best_cpu = max(best_cpu, 2 * n**3 * threads / max(time.process_time() - c0, 1e-9) / 1e9)
    return best, best_cpu


def timed(fn, repeats: int, device: str = "cpu") -> dict:
    """Median wall and process-CPU seconds of ``fn()`` over ``repeats`` runs after one warm-up (and its result)."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    out = fn()
    sync()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        sync()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"wall_s": statistics.median(wall), "cpu_s": statistics.median(cpu), "result": out}


def peak(device: str = "cpu") -> dict:
    """The matmul reference: fp32 and bf16 GFLOP/s, by wall time and by CPU time (``*_cpu``)."""
    f32, f32_cpu = matmul_gflops(torch.float32, device)
    b16, b16_cpu = matmul_gflops(torch.bfloat16, device)
    return {"fp32_gflops": f32, "bf16_gflops": b16, "fp32_gflops_cpu": f32_cpu, "bf16_gflops_cpu": b16_cpu}


def ratios(gflop: float, wall_s: float, ref: dict, cpu_s: float | None = None, threads: int | None = None) -> dict:
    """Achieved GFLOP/s of ``gflop`` in ``wall_s`` and its fractions of the matmul references ``ref``.

    With ``cpu_s``, also the CPU-time equivalents (``gflop / cpu_s * threads`` against the matmul's rate measured the
    same way): on a machine that other jobs share, the process gets fewer time slices and its wall time grows, while
    its CPU time, and hence this ratio, stays close to what an idle machine gives.
    """
    rate = gflop / wall_s
    out = {
        "gflops": rate,
        "fraction_of_fp32_matmul": rate / ref["fp32_gflops"],
        "fraction_of_bf16_matmul": rate / ref["bf16_gflops"],
    }
    if cpu_s and ref.get("fp32_gflops_cpu"):
        rate_cpu = gflop / cpu_s * (threads or torch.get_num_threads())
        out.update({
            "gflops_cpu_equivalent": rate_cpu,
            "fraction_of_fp32_matmul_cpu": rate_cpu / ref["fp32_gflops_cpu"],
            "fraction_of_bf16_matmul_cpu": rate_cpu / ref["bf16_gflops_cpu"],
        })
    return out
