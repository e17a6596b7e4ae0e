"""bench.corun: processes started together time their evaluations at once, the slowdown is
together over alone, and bad arguments are one line. (Its figures are measured by running it,
not here.)"""
from __future__ import annotations

import json

import pytest

from gatys.bench import corun


def test_processes_evaluate_at_once_and_the_slowdown_is_together_over_alone(real_weights,
                                                                              tmp_path):
    out = tmp_path / "corun.json"
    assert corun.main(["--size", "32", "--processes", "2", "--evaluations", "2", "--rounds",
                       "1", "--no-torch", "--json", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    e = r["engines"]["ours"]
    assert list(r["engines"]) == ["ours"] and r["processes"] == 2
    assert len(e["alone"]) == len(e["together"]) == 1 and min(e["alone"] + e["together"]) > 0
    assert e["slowdown"] == pytest.approx(e["together"][0] / e["alone"][0])
    assert e["best_speedup"] == pytest.approx(2 / e["slowdown"])
    assert "best speed-up on 2" in corun.format_table(r)


def test_a_child_that_fails_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(corun, "_MODULE", "gatys.no_such_bench")
    assert corun.main(["--size", "32", "--rounds", "1", "--no-torch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "corun: error: a process timing ours stopped before its evaluations"


@pytest.mark.parametrize("args", [["--processes", "0"], ["--size", "-1"], ["--rounds", "0"]])
def test_bad_arguments_are_one_line(args, capsys):
    with pytest.raises(SystemExit) as exited:
        corun.main(args)
    assert exited.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("python -m bench.corun: error")
