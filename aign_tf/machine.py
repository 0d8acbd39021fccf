"""Facts about this machine for benchmark and search reports: CPU model and clock, cores, versions, and how
busy the other processes keep it."""

from __future__ import annotations

import os
import platform
import time


def cpuinfo_field(name: str, cpuinfo_path: str = "/proc/cpuinfo") -> str | None:
    """The first ``name`` field (e.g. ``"model name"``, ``"cpu MHz"``) of /proc/cpuinfo; None if absent."""
    try:
        with open(cpuinfo_path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip().lower() == name.lower():
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_model(cpuinfo_path: str = "/proc/cpuinfo") -> str:
    """The CPU's ``model name`` from /proc/cpuinfo (or ``platform.processor()`` where there is none)."""
    return cpuinfo_field("model name", cpuinfo_path) or platform.processor() or "unknown"


def cpu_snapshot(stat_path: str = "/proc/stat") -> tuple[float, float, float | None]:
    """(wall s, this process's CPU s, whole machine's busy CPU s or None without /proc/stat).

    Busy = user + nice + system + irq + softirq + steal jiffies of the ``cpu`` line of /proc/stat."""
    wall_s, own_s = time.perf_counter(), time.process_time()
    try:
        with open(stat_path) as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return wall_s, own_s, None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return wall_s, own_s, (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def other_cpu_cores(before: tuple, after: tuple) -> float | None:
    """Average number of cores kept busy by *other* processes (and the hypervisor's steal) between two
    :func:`cpu_snapshot` s: (machine busy - own CPU) / wall, clipped at 0. None without /proc/stat."""
    if before[2] is None or after[2] is None:
        return None
    wall_s = max(after[0] - before[0], 1e-9)
    return max(0.0, ((after[2] - before[2]) - (after[1] - before[1])) / wall_s)


def machine_info() -> dict:
    import keras
    import tensorflow as tf

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mhz = cpuinfo_field("cpu MHz")
    return {"cpu_model": cpu_model(), "cpu_mhz": float(mhz) if mhz else None, "cores": cores,
            "logical_cpus": os.cpu_count(),
            "tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version(),
            "gpus": len(tf.config.list_physical_devices("GPU"))}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []
