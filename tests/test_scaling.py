"""bench.scaling: the phase profile accounts for a whole evaluation, Amdahl's law is fitted
through the two measured points, the step of the GPU check writes its JSON, and bad arguments
are one line. (Its figures are measured by running it, not here.)"""
from __future__ import annotations

import json

import numpy as np
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
    from gatys.bench import partition
    capsys.readouterr()
    assert partition.main(["--like", "0"]) == 2
    assert capsys.readouterr().err.startswith("partition: error: --like")


def test_the_gpu_checks_step_writes_its_json(real_weights, tmp_path, monkeypatch):
    """At most threads the step also times the engine's split against tile rows only."""
    monkeypatch.setattr(scaling, "STEP_THREADS", (1, 2, 3))
    monkeypatch.setattr(scaling, "cpus", lambda: 3)  # three threads, on whatever cores
    result = scaling.run_step(tmp_path, size=32, pairs=1, profiled=1)
    saved = json.loads((tmp_path / "cpu_scaling.json").read_text())
    assert [r["threads"] for r in saved["runs"]] == [1, 2, 3]
    assert result["summary"].startswith("3 threads at 32^2: ours ")
    assert [p["threads"] for p in saved["prediction"]] == [3]
    assert [v["name"] for v in saved["partition"]["variants"]] == ["own (3)", "like 3, by rows"]


def test_the_partition_bench_cuts_as_many_threads_would_and_times_every_layer(real_weights):
    """bench.partition: its workers cut jobs as ``like`` threads would (so the layers choose
    their split as there), its three partitions are timed layer by layer, and the engine's
    setting is restored after."""
    from gatys.bench import partition
    from gatys.kernels import winograd

    workers = partition.Partitioned(1, 16)
    assert len(workers.per_thread(512)) == 16 and len(workers.split(8, 8)) == 8
    assert winograd._by_channels(workers, 36 * 512 * 16 * 16 * 4, np.empty((36, 512, 512),
                                                                             np.float32))
    r = partition.measure(32, 4, 1, 1)
    assert [v["split"] for v in r["variants"]] == [None, None, "rows"]
    assert [v["partition_threads"] for v in r["variants"]] == [1, 4, 4]
    for v in r["variants"]:
        assert v["seconds"] > 0 and v["layers"][-1]["layer"] == "conv5_1"
        assert all(row["forward_seconds"] > 0 for row in v["layers"])
    assert winograd.WINOGRAD_SPLIT is None
    assert "like 4, by rows" in partition.format_table(r).splitlines()[1]
