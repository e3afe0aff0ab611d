"""Whole-process timing for the benchmarks: wall and CPU seconds of one child process."""

from __future__ import annotations

import resource
import subprocess
import time


def timed(cmd: list[str] | str, **kwargs) -> tuple[float, float, subprocess.CompletedProcess]:
    """Run ``cmd`` (``subprocess.run`` keywords pass through; output captured as text unless ``stdout``
    is given); its wall seconds and CPU seconds (user + system of the child and its children, every thread)."""
    if "stdout" not in kwargs:
        kwargs = {"capture_output": True, "text": True} | kwargs
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, check=True, **kwargs)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc
