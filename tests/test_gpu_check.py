"""bench/gpu_check.py where there is no GPU (here and in CI): one line, a report that lists what
was skipped and why, and its documented exit status. On a GPU it is run by hand (docs/cuda.md)."""
from __future__ import annotations

import json

import pytest

from gatys.bench import gpu_check

from conftest import CUDA_MISSING


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
    report = gpu_check.Report(tmp_path)
    report.step("broken", lambda: 1 / 0)
    report.step("fine", lambda: {"value": 3})
    saved = json.loads((tmp_path / "gpu_check.json").read_text())["steps"]
    assert saved["broken"]["status"] == "failed"
    assert saved["broken"]["error"] == "ZeroDivisionError: division by zero"
    assert saved["fine"]["status"] == "passed" and saved["fine"]["value"] == 3
