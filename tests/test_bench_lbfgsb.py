"""bench/lbfgsb.py: scipy's L-BFGS-B timed per iteration, with and without the [0, 1] bounds
(docs/cuda.md: on a GPU it is most of a transfer's time)."""
from __future__ import annotations

import json

import pytest

from gatys.bench import lbfgsb


def test_the_lbfgsb_bench_times_iterations_with_and_without_bounds(capsys):
    assert lbfgsb.main(["--pixels", "2000", "--iterations", "5", "--history", "3", "--threads",
                        "1", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    pad = (256 - 2000) % 512  # to 2 KiB past a multiple of 4 KiB
    assert [(r["threads"], r["history"], r["bounds"], r["padding"]) for r in rows] == [
        (1, 3, True, pad), (1, 3, True, 0), (1, 3, False, 0),
        (2, 3, True, pad), (2, 3, True, 0), (2, 3, False, 0)]
    for r in rows:
        assert r["variables"] == 2000 and r["iterations"] == 5 and r["seconds_per_iteration"] > 0
    assert rows[0]["at_a_bound"] > 0.05 and rows[2]["at_a_bound"] == 0  # the bounds are active
    assert rows[0]["at_a_bound"] == rows[1]["at_a_bound"]  # the same iterates, padded or not
    assert lbfgsb.main(["--pixels", "2000", "--iterations", "5", "--history", "3"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["threads", "history", "bounds", "padding", "ms/iteration",
                                "calls/it", "at", "a", "bound"]
    assert [line.split()[:4] for line in table[2:]] == [
        ["1", "3", "True", str(pad)], ["1", "3", "True", "0"], ["1", "3", "False", "0"]]
    with pytest.raises(SystemExit) as e:
        lbfgsb.main(["--history", "0"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        lbfgsb.main(["--threads", "1", "0"])
    assert e.value.code == 2
