"""bench.scaling: the phase profile accounts for a whole evaluation, Amdahl's law is fitted
through the two measured points, the step of the GPU check writes its JSON, and bad arguments
are one line. (Its figures are measured by running it, not here.)"""
from __future__ import annotations

import json

import pytest

from gatys.bench import scaling
from gatys.kernels.workers import cpus


def test_amdahl_goes_through_both_measurements_and_respects_the_cap():
    assert scaling.amdahl(4.0, 2.5, 1) == pytest.approx(4.0)
    assert scaling.amdahl(4.0, 2.5, 2) == pytest.approx(2.5)
    assert scaling.amdahl(4.0, 2.5, 16) == pytest.approx(1.0 + 3.0 / 16)  # s = 1, p = 3
    assert scaling.amdahl(4.0, 2.0, 8) == pytest.approx(0.5)  # all parallel
    assert scaling.amdahl(4.0, 4.4, 8) == pytest.approx(4.8 - 0.8 / 8)  # slower on two: worse
    assert scaling.amdahl(4.0, 1.5, 8) == pytest.approx(0.5)  # never better than t(1)/T
    assert scaling.amdahl(4.0, 2.0, 8, cap=2.0) == pytest.approx(2.0)  # memory: at most 2x


def test_the_profile_accounts_for_every_layer_and_the_rest(real_weights, tmp_path):
    result = scaling.measure(32, [1, 2] if cpus() >= 2 else [1], pairs=1, profiled=1,
                             with_torch=False, log=lambda s: None)
    for run in result["runs"]:
        rows = run["profile"]["rows"]
        assert [r["layer"] for r in rows if r["direction"] == "forward"][:3] == [
            "conv1_1", "conv1_2", "pool1"]
        assert rows[-1]["layer"] == scaling.OUTSIDE
        assert all(0 <= r["parallel_seconds"] <= r["seconds"] * 1.001 + 1e-6 for r in rows)
        assert sum(r["seconds"] for r in rows) == pytest.approx(run["profile"]["seconds"])
        by_phase = sum(p["parallel"] + p["main"] for p in run["phases"].values())
        assert by_phase == pytest.approx(run["profile"]["seconds"])
        assert run["bandwidth_gbs"] > 0 and run["ratio"] is None
    one = result["runs"][0]
    assert one["speedup"] == 1.0 and one["serial_remainder"] == pytest.approx(0.0)
    if len(result["runs"]) == 2:  # at one thread the fit returns the measurement
        assert scaling.predict(result, [1])[0]["seconds"] == pytest.approx(one["seconds"])
    text = scaling.format_table({**result, "prediction": []})
    assert "losses and the rest" in text and "conv backward" in text


def test_bad_arguments_are_one_line(capsys):
    assert scaling.main(["--threads", str(cpus() + 1)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit) as e:
        scaling.main(["--threads", "0"])
    assert e.value.code == 2
    assert scaling.main(["--size", "8"]) == 2


def test_the_gpu_checks_step_writes_its_json(real_weights, tmp_path, monkeypatch):
    monkeypatch.setattr(scaling, "STEP_THREADS", (1, 2))
    result = scaling.run_step(tmp_path, size=32, pairs=1, profiled=1)
    saved = json.loads((tmp_path / "cpu_scaling.json").read_text())
    assert [r["threads"] for r in saved["runs"]] == [t for t in (1, 2) if t <= cpus()]
    assert result["summary"].startswith(f"{saved['runs'][-1]['threads']} threads at 32^2: ours ")
