"""bench/gpu_check.py where there is no GPU (here and in CI): one line, a report that lists what
was skipped and why, and its documented exit status. On a GPU it is run by hand (docs/cuda.md)."""
from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
from conftest import CUDA_MISSING

from gatys.bench import gpu_check, gpu_layers, gpu_profile, gpu_report, gpu_steps


@pytest.mark.skipif(CUDA_MISSING is None, reason="a GPU is here: run the check itself")
def test_without_a_gpu_the_check_says_so_in_one_line_and_its_report(tmp_path, capsys):
    assert gpu_check.main([str(tmp_path / "out")]) == gpu_check.EXIT_NO_GPU
    out = capsys.readouterr().out
    assert out.startswith("gpu_check: no GPU, nothing measured (") and out.count("\n") == 1
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert report["gpu"] is False
    assert list(report["steps"]) == list(gpu_check.STEPS)
    for step in report["steps"].values():
        assert step["status"] == "skipped" and step["reason"].startswith("no GPU: ")
    assert "cupy_distributions" in report["environment"]


def test_a_missing_weights_file_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        gpu_check.main([str(tmp_path), "--weights", str(tmp_path / "nope.onnx")])
    assert e.value.code == gpu_check.EXIT_USAGE
    assert "is not a file" in capsys.readouterr().err


def test_a_failing_step_is_recorded_and_the_next_one_runs(tmp_path):
    report = gpu_report.Report(tmp_path)
    report.step("broken", lambda: 1 / 0)
    report.step("fine", lambda: {"value": 3})
    saved = json.loads((tmp_path / "gpu_check.json").read_text())["steps"]
    assert saved["broken"]["status"] == "failed"
    assert saved["broken"]["error"] == "ZeroDivisionError: division by zero"
    assert saved["fine"]["status"] == "passed" and saved["fine"]["value"] == 3


def _on_the_host_emulated_backend(monkeypatch, make_backend, **cupy_attributes) -> None:
    """A step's ``cupy`` made a NumPy stand-in (its pool, plus ``cupy_attributes``) and its
    ``CudaBackend(...)`` the host-emulated backend that ``make_backend`` returns."""
    from host_cuda import compiler

    from gatys.kernels import cuda_backend

    if compiler() is None:
        pytest.skip("no C++ compiler for the host-emulated kernels")
    pool = types.SimpleNamespace(free_all_blocks=lambda: None)
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(
        get_default_memory_pool=lambda: pool, **cupy_attributes))
    monkeypatch.setattr(cuda_backend, "CudaBackend", make_backend)


def test_the_layers_step_runs_on_the_host_emulated_backend(tmp_path, monkeypatch):
    """The per-layer step's own code (paths, GEMM split, totals, table) runs here on the
    host-emulated backend and a NumPy stand-in for CuPy; on a GPU it times the real one."""
    from host_cuda import emulated_backend

    stream = types.SimpleNamespace(synchronize=lambda: None)
    _on_the_host_emulated_backend(
        monkeypatch, lambda name, xp, tf32=False, winograd=False, direct=True:
        emulated_backend(winograd=winograd, direct=direct),
        asarray=np.asarray, cuda=types.SimpleNamespace(get_current_stream=lambda: stream))
    result = gpu_layers.run_layers(gpu_steps.random_weights_file(tmp_path), size=64, repeats=1)
    rows = result["rows"]
    assert [r["layer"] for r in rows[:3]] == ["conv1_1", "conv1_2", "conv2_1"]
    assert len(rows) == 2 * 13 and {r["tf32"] for r in rows} == {False, True}
    conv1_1, conv3_1 = rows[0], rows[4]
    assert conv1_1["shape"] == "3->64x64x64" and conv3_1["shape"] == "128->256x16x16"
    assert "direct_forward_ms" in conv1_1 and "direct_forward_ms" not in conv3_1
    assert "winograd_forward_ms" in rows[1] and "winograd_forward_ms" not in conv1_1
    for r in rows:
        assert r["im2col_forward_ms"] > 0 and r["gemm_input_grad_ms"] > 0
    assert result["totals_ms"]["float32_best_path_ms"] <= result["totals_ms"][
        "float32_im2col_forward_ms"] + result["totals_ms"]["float32_im2col_input_grad_ms"]
    assert result["table"].splitlines()[1].startswith("conv1_1")


def test_gpu_activity_measures_busy_time_gaps_and_kernels_per_evaluation():
    """The profile step's reading of a trace: two evaluations, each a kernel of 10 us, a 30 us
    gap, a copy of 5 us overlapping a second kernel of 10 us; CPU events do not count."""
    def event(cat, name, ts, dur):
        return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur}

    events = [{"ph": "M", "name": "process_name"}, event("cpu_op", "aten::mm", 0, 500)]
    for t0 in (100, 300):
        events += [event("kernel", "im2col_padded", t0, 10),
                   event("kernel", "sgemm", t0 + 40, 10),
                   event("gpu_memcpy", "Memcpy DtoH", t0 + 45, 10)]
    activity = gpu_profile.gpu_activity({"traceEvents": events}, evaluations=2)
    assert activity["span_us"] == (355 - 100) / 2
    assert activity["busy_us"] == (10 + 15) * 2 / 2
    assert activity["categories"]["kernel"] == {"count": 2, "us": 20}
    assert activity["categories"]["gpu_memcpy"] == {"count": 1, "us": 10}
    assert [k["name"] for k in activity["kernels"]] == ["im2col_padded", "sgemm", "Memcpy DtoH"]
    gaps = activity["longest_gaps"]
    assert gaps[0] == {"us": 145, "after": "Memcpy DtoH", "before": "im2col_padded"}
    assert [g["us"] for g in gaps[1:]] == [30, 30]
    assert activity["gaps_over_20us"] == (145 + 30 + 30) / 2
    assert gpu_profile.gpu_activity({"traceEvents": events[:2]}, 1) == {"events": 0}
    assert activity["linked_to_launch"] == 0 and activity["started_on_launch_share"] is None


def test_gpu_activity_tells_work_that_waited_for_its_launch():
    """A kernel that starts 2 us after its launch call returns found nothing queued; one that
    starts 300 us after waited in the queue; a copy without a linked call is not counted."""
    def event(cat, name, ts, dur, correlation=None):
        e = {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur}
        if correlation is not None:
            e["args"] = {"correlation": correlation}
        return e

    events = [event("cuda_driver", "cuLaunchKernel", 0, 8, 1),
              event("kernel", "im2col_padded", 10, 400, 1),
              event("cuda_runtime", "cudaLaunchKernel", 100, 10, 2),
              event("kernel", "sgemm", 410, 50, 2),
              event("gpu_memcpy", "Memcpy DtoH", 470, 5)]
    activity = gpu_profile.gpu_activity({"traceEvents": events}, evaluations=1)
    assert activity["linked_to_launch"] == 2
    assert activity["started_on_launch_share"] == 0.5
    assert activity["median_launch_to_start_us"] == 300


def test_only_and_skip_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        gpu_check.main([str(tmp_path), "--only", "profile", "--skip", "tests"])
    assert e.value.code == gpu_check.EXIT_USAGE
    assert "--only and --skip exclude each other" in capsys.readouterr().err


def test_the_graphs_step_runs_on_the_host_emulated_backend(tmp_path, monkeypatch):
    """The CUDA-graph step's own code (plain against replayed, their difference, the targets
    and the table) on the host-emulated backend, whose recordings replay as a graph would; no
    PyTorch GPU here, so no peer column."""
    from host_cuda import emulated_backend

    _on_the_host_emulated_backend(
        monkeypatch, lambda name, xp, tf32=False, graphs=False: emulated_backend(graphs=graphs),
        asnumpy=np.asarray)
    result = gpu_steps.run_graphs(gpu_steps.random_weights_file(tmp_path), (32,), repeats=1)
    rows = result["rows"]
    assert [(r["size"], r["tf32"]) for r in rows] == [(32, False), (32, True)]
    for r in rows:
        assert r["failure"] is None and r["replays"] >= 2
        # the same kernels; inside the recording the products are the ctypes GEMM's
        assert 0 < r["loss_difference"] <= 1e-6 and 0 < r["grad_difference"] <= 1e-5
        assert r["seconds"] > 0 and r["graphs_seconds"] > 0 and r["torch_seconds"] is None
    assert result["status"] == "passed" and result["targets"]["512_at_most_torch"] == {}
    assert result["table"].splitlines()[1].split()[:2] == ["32", "float32"]


def test_the_lbfgsb_step_times_one_thread_and_every_core():
    from gatys.kernels.workers import cpus

    result = gpu_steps.run_lbfgsb(variables=3000, iterations=4)
    pad = (256 - 3000) % 512
    assert [(r["threads"], r["padding"]) for r in result["rows"]] == \
        [(1, pad), (1, 0)] + [(cpus(), pad)] * (cpus() > 1)
    assert all(r["bounds"] and r["history"] == 20 for r in result["rows"])
    assert result["summary"].startswith("1 thread(s): ") and "1 thread(s) unpadded: " in \
        result["summary"]
