"""bench.gil_waits: waits and holds read from perf's lines (written here as perf writes them),
missing probes and perf refused in one line, and, where perf and the probes exist, a real
recording of the evaluation loop. (The figures are measured by running it.)"""
from __future__ import annotations

import json
import shutil

import pytest
from support.uprobes import fake_uprobe

from gatys.bench import gil_waits, releases

# perf script -F tid,time,event --ns: two threads; thread 7 waits 30 us once, thread 8 4 us
SCRIPT = """\
     7 99.000000000:    probe_libpython3:PyEval_RestoreThread:
     7 100.000010000:   probe_libpython3:PyEval_RestoreThread__return:
     7 100.000020000:   probe_libpython3:PyEval_SaveThread:
     7 100.000100000:   probe_libpython3:PyEval_RestoreThread:
     8 100.000105000:   probe_libpython3:PyEval_RestoreThread:
     8 100.000109000:   probe_libpython3:PyEval_RestoreThread__return:
     7 100.000130000:   probe_libpython3:PyEval_RestoreThread__return:
     8 100.000115000:   probe_libpython3:PyEval_SaveThread:
     7 100.000140000:   probe_libpython3:PyEval_SaveThread:
     7 100.000150000:   probe_libpython3:PyEval_RestoreThread:
     7 100.000152000:   probe_libpython3:PyEval_RestoreThread__return:
     7 102.000000000:   probe_libpython3:PyEval_SaveThread:
not a sample line
"""


def test_waits_and_holds_are_read_per_thread_within_the_window():
    threads = gil_waits.waits(SCRIPT, (100.0, 101.0))
    seven, eight = threads[7], threads[8]
    # the take that began before the window is left out; its hold (10 us) counts
    assert seven["waits"] == pytest.approx([30e-6, 2e-6], abs=1e-9)
    assert seven["held_seconds"] == pytest.approx(10e-6 + 10e-6, abs=1e-9)
    assert seven["releases"] == 2  # the one after the window is not
    assert eight["waits"] == pytest.approx([4e-6], abs=1e-9)
    assert eight["held_seconds"] == pytest.approx(6e-6, abs=1e-9) and eight["releases"] == 1


def test_the_summary_is_per_evaluation_and_puts_each_wait_in_one_bin():
    r = gil_waits.summary(gil_waits.waits(SCRIPT, (100.0, 101.0)), evaluations=2)
    seven = next(t for t in r["threads"] if t["tid"] == 7)
    assert seven["takes"] == 1.0 and seven["long_waits"] == 0.5
    assert seven["long_wait_seconds"] == pytest.approx(15e-6, abs=1e-9)
    assert seven["wait_seconds"] == pytest.approx(16e-6, abs=1e-9)
    assert [b["waits"] for b in r["bins"]] == [1.0, 0.0, 0.5, 0.0, 0.0, 0.0]
    assert sum(b["waits"] for b in r["bins"]) == sum(t["takes"] for t in r["threads"])
    assert r["bins"][-1]["to_us"] == float("inf")


def test_missing_probes_are_one_line_saying_how_to_make_them(tmp_path, monkeypatch, capsys):
    for name in ("PyEval_SaveThread", "PyEval_RestoreThread"):  # no __return
        fake_uprobe(tmp_path, name, 1, releases.library())
    with pytest.raises(RuntimeError, match="PyEval_RestoreThread__return .*perf probe -x"):
        gil_waits.probe_events([str(tmp_path)])
    fake_uprobe(tmp_path, "PyEval_RestoreThread__return", 2, releases.library())
    assert gil_waits.probe_events([str(tmp_path / "none"), str(tmp_path)]) == [
        "probe_python3:PyEval_RestoreThread", "probe_python3:PyEval_RestoreThread__return",
        "probe_python3:PyEval_SaveThread"]
    monkeypatch.setattr(gil_waits, "TRACING", (str(tmp_path / "none"),))
    monkeypatch.setattr(gil_waits.shutil, "which", lambda name: "/usr/bin/perf")
    assert gil_waits.main(["--size", "32", "--seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gil_waits: error: no uprobe PyEval_RestoreThread") and \
        err.count("\n") == 1


def test_no_perf_and_bad_arguments_are_one_line(monkeypatch, capsys):
    assert gil_waits.main(["--size", "16"]) == 2
    assert gil_waits.main(["--like", "0"]) == 2
    assert gil_waits.main(["--out", "/no/such/folder/w.json"]) == 2
    monkeypatch.setattr(gil_waits.shutil, "which", lambda name: None)
    assert gil_waits.main(["--size", "32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 4 and "folder /no/such/folder does not exist" in err
    assert err.splitlines()[-1] == ("gil_waits: error: Linux's perf is not installed (Debian: "
                                    "apt install linux-perf)")


def _recordable() -> bool:
    try:
        gil_waits.probe_events()
    except RuntimeError:
        return False
    return shutil.which("perf") is not None


@pytest.mark.skipif(not _recordable(), reason="no perf, or no uprobes on this Python's library")
def test_a_recorded_loop_gives_each_thread_s_takes(tmp_path, capsys):
    out = tmp_path / "w.json"
    assert gil_waits.main(["--like", "2", "--size", "32", "--seconds", "1",
                           "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["evaluations"] >= 1 and r["threads"]
    busiest = r["threads"][0]
    assert busiest["takes"] > 50 and busiest["held_seconds"] > 0
    assert abs(busiest["releases"] - busiest["takes"]) <= 0.05 * busiest["takes"] + 2
    assert sum(b["waits"] for b in r["bins"]) == pytest.approx(
        sum(t["takes"] for t in r["threads"]))
    assert capsys.readouterr().out.startswith("32^2, parts cut as for 2 threads, run on ")
