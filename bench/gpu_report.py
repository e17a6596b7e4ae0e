"""What the GPU check records: its log lines, the machine it ran on, and the JSON report that
each step of :mod:`.gpu_check` adds to as it finishes."""
from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gatys.kernels.cpuinfo import first_cpu_fields


def log(text: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def precision(tf32: bool) -> str:
    """How the report names a float32 run with or without TF32 products."""
    return "tf32" if tf32 else "float32"


def environment() -> dict[str, Any]:
    """What ran the check: machine, Python packages and, where CuPy imports, the GPU."""
    env: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                           "cpus": os.cpu_count(), "numpy": np.__version__}
    if "model name" in (cpu := first_cpu_fields()):
        env["cpu"] = cpu["model name"]
    # Which wheel provides ``cupy`` (cupy-cuda12x, cupy-cuda13x, ...): nothing depends on it.
    env["cupy_distributions"] = importlib.metadata.packages_distributions().get("cupy", [])
    with contextlib.suppress(Exception):
        import cupy
        env["cupy"] = cupy.__version__
        runtime = cupy.cuda.runtime
        env["cuda_runtime"] = runtime.runtimeGetVersion()
        env["cuda_driver"] = runtime.driverGetVersion()
        props = runtime.getDeviceProperties(0)
        env["gpu"] = props["name"].decode()
        env["gpu_memory_bytes"] = int(props["totalGlobalMem"])
    with contextlib.suppress(Exception):
        import torch
        env["torch"] = torch.__version__
    return env


class Report:
    """The JSON report, rewritten after every step so that a check cut short still leaves
    what it measured."""

    def __init__(self, out: Path) -> None:
        self.path = out / "gpu_check.json"
        self.data: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                     "steps": {}}

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2, default=str) + "\n")

    def step(self, name: str, run: Callable[[], dict[str, Any]]) -> None:
        log(f"{name} ...")
        start = time.perf_counter()
        try:
            record = run()
        except Exception as e:
            record = {"status": "failed", "error": f"{type(e).__name__}: {e}",
                      "traceback": traceback.format_exc(limit=8)}
        record.setdefault("status", "passed")
        record["seconds"] = round(time.perf_counter() - start, 2)
        self.data["steps"][name] = record
        self.save()
        log(f"{name}: {record['status']} in {record['seconds']} s")
