"""The CUDA memory estimate against what was measured: on a GPU (docs/bench_cuda.json, written
by bench/gpu_check.py) and, for its live-array model, on the host-emulated CUDA backend."""
from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from host_cuda import compiler, emulated_backend

from gatys.model.network import Network
from gatys.model.objective import paper_objective
from gatys.model.vgg import CHANNELS
from gatys.run import memory
from gatys.run.api import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS

LAYERS = [DEFAULT_CONTENT_LAYER, *DEFAULT_STYLE_LAYERS]
RECORD = Path(__file__).resolve().parent.parent / "docs" / "bench_cuda.json"


def _measured_runs():
    return json.loads(RECORD.read_text())["steps"]["memory"]["runs"]


@pytest.mark.parametrize("run", _measured_runs(), ids=lambda r: f"{r['size']}px")
def test_gpu_estimate_is_within_15_percent_of_the_measured_peak(run):
    """What the GPU gave the process (memGetInfo before the network was loaded and after two
    evaluations) against the estimate the run's memory check uses."""
    assert run["ran"]
    estimate = memory.estimate_cuda_bytes((run["size"], run["size"]), CHANNELS, LAYERS)
    assert abs(estimate / run["device_used_bytes"] - 1) <= 0.15


@pytest.mark.skipif(compiler() is None, reason="no C++ compiler for the host emulation")
def test_live_model_bounds_the_emulated_backend_peak(random_full_vgg):
    """The CUDA backend's own code on the host (tests/host_cuda.py), traced by tracemalloc: the
    estimate's live part (the estimate over the pool factor) is at least the peak of live arrays
    and at most 15 % above it. (NumPy does not copy the float32 weights as the upload to a GPU
    does: their bytes are added to the traced peak.)"""
    size = 256
    tracemalloc.start()
    try:
        network = Network(random_full_vgg, emulated_backend())
        rng = np.random.default_rng(size)
        content, style, x = (rng.random((3, size, size), dtype=np.float32) for _ in range(3))
        paper_objective(network, content, style).evaluate(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    peak += memory.loaded_weights_bytes(CHANNELS, 4)
    live = memory.estimate_cuda_bytes((size, size), CHANNELS, LAYERS) / memory.CUDA_POOL_FACTOR
    assert 1.0 <= live / peak <= 1.15, (live, peak)
    assert np.isfinite(live)
