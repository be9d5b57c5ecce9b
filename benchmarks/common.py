"""Timing helpers: wall-clock medians of several runs; ratios are computed per run (both sides in the same
process, interleaved) and the median of the ratios is reported: the machine is shared and noisy."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from typing import Callable


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def percentile(xs: list[float], q: float) -> float:
    ys = sorted(xs)
    k = min(len(ys) - 1, max(0, int(round(q / 100 * (len(ys) - 1)))))
    return ys[k]


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    mem = ""
    try:
        mem = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.splitlines()[1].split()[1] + " GiB"
    except Exception:  # noqa: BLE001
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "python": platform.python_version(),
            "os": platform.platform(), "load_average_at_start": load,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
