"""The GPU check's memory step: the GPU memory estimate against the measured peak.

``python -m gatys.bench.gpu_peak SIZE WEIGHTS`` is the probe, run in a fresh process per size so
that the pool's high-water mark is that run's alone: the check a transfer makes before it
starts, then the targets and two loss+gradient evaluations, which is all a transfer puts on the
GPU (L-BFGS-B works on the host). It prints one ``RESULT {json}`` line: the estimate, the pool's
peak live bytes (through an allocator wrapper), what the pool took from the GPU, or why it did
not run. :func:`run_memory` runs it per size and judges the estimate.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from .gpu_report import log

RESULT = "RESULT "


def probe(size: int, weights: str) -> dict[str, Any]:
    """Measure one size in this process (which must be fresh: the pool's peak is its own)."""
    import cupy

    from gatys.model.vgg import CHANNELS
    from gatys.run import api, fitting, memory

    from .harness import make_objective

    pool = cupy.get_default_memory_pool()
    peak = [0]

    def malloc(n: int) -> Any:
        m = pool.malloc(n)
        peak[0] = max(peak[0], pool.used_bytes())
        return m

    cupy.cuda.set_allocator(malloc)
    layers = [api.DEFAULT_CONTENT_LAYER, *api.DEFAULT_STYLE_LAYERS]
    record: dict[str, Any] = {"size": size, "estimate_bytes": memory.estimate_cuda_bytes(
        (size, size), CHANNELS, layers)}
    try:
        fitting.check_shape((size, size), layers, history=20, device="cuda")
        free0, _ = cupy.cuda.runtime.memGetInfo()
        network = api.load_network(weights, device="cuda")
        objective, x = make_objective(network, size)
        for _ in range(2):
            network.backend.to_numpy(objective.evaluate(x).grad)
        free1, _ = cupy.cuda.runtime.memGetInfo()
        record.update(ran=True, peak_used_bytes=peak[0], pool_bytes=pool.total_bytes(),
                      device_used_bytes=free0 - free1)
    except Exception as e:  # the report says what stopped it; the parent judges
        record.update(ran=False, error=f"{type(e).__name__}: {e}")
    return record


def run_memory(weights: Path, sizes: Sequence[int], timeout: int) -> dict[str, Any]:
    rows, ok = [], True
    for size in sizes:
        log(f"memory at {size}x{size}")
        done = subprocess.run([sys.executable, "-m", "gatys.bench.gpu_peak", str(size),
                               str(weights)], capture_output=True, text=True, timeout=timeout)
        line = next((line for line in done.stdout.splitlines() if line.startswith(RESULT)), None)
        if line is None:
            rows.append({"size": size, "ran": False, "error": done.stderr[-2000:]})
            ok = False
            continue
        row = json.loads(line[len(RESULT):])
        if row["ran"]:
            row["estimate_over_pool"] = row["estimate_bytes"] / row["pool_bytes"]
            row["within_15_percent"] = abs(row["estimate_over_pool"] - 1) <= 0.15
        else:  # refused up front is acceptable; anything else is not
            ok &= "GPU memory" in row.get("error", "")
        rows.append(row)
    return {"status": "passed" if ok else "failed", "runs": rows}


if __name__ == "__main__":
    print(RESULT + json.dumps(probe(int(sys.argv[1]), sys.argv[2])))
