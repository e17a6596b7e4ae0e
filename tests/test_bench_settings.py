"""bench.settings: variants parsed (and refused in one line), each one's constants set for its
own evaluations only, the settings in turns with the order turned each round, and the table.
(The figures are measured by running it, not here.)"""
from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from gatys.bench import settings
from gatys.kernels import winograd, workers
from gatys.kernels.workers import cpus


def test_a_variant_is_module_constants_and_python_literals():
    assert settings.parse_variant("workers.WAKE_SECONDS=0.5") == {("workers", "WAKE_SECONDS"): 0.5}
    assert settings.parse_variant(" winograd.WINOGRAD_CACHE_PARTS = False ; "
                                  "winograd.WINOGRAD_SPLIT=(2, 1)") == {
        ("winograd", "WINOGRAD_CACHE_PARTS"): False, ("winograd", "WINOGRAD_SPLIT"): (2, 1)}


@pytest.mark.parametrize("text, says", [
    ("WAKE_SECONDS=1", "not module.NAME=value"),
    ("workers.WAKE_SECONDS", "not module.NAME=value"),
    ("nomodule.X=1", "no module gatys.kernels.nomodule"),
    ("workers.NO_SUCH=1", "has no constant NO_SUCH"),
    ("workers.default_threads=1", "has no constant default_threads"),  # a function, not one
    ("workers.WAKE_SECONDS=fast", "not a Python literal: 'fast'"),
])
def test_a_bad_variant_is_one_line_naming_it(text, says, capsys):
    with pytest.raises(ValueError, match=says):
        settings.parse_variant(text)
    assert settings.main(["--variant", text, "--no-torch"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("settings: error: ") and says in err and err.count("\n") == 1


def test_bad_arguments_are_one_line(capsys):
    assert settings.main(["--threads", str(cpus() + 1)]) == 2
    assert "CPUs here" in capsys.readouterr().err
    assert settings.main(["--size", "16"]) == 2
    assert settings.main(["--rounds", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 2


def test_each_thread_count_warms_up_then_the_variants_take_turns(monkeypatch):
    """Per round and thread count: an untimed evaluation, then the variants in an order turned
    by one each round, each under its own constants and with them restored after, BLAS on as
    many threads; PyTorch's last; the warm-up round is not kept."""
    calls: list[tuple] = []
    clock = iter(range(1, 1000))

    def timed(once):
        once()
        return float(next(clock))

    monkeypatch.setattr(settings, "_timed", timed)
    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    onces = {t: (lambda t=t: calls.append((t, workers.WAKE_SECONDS, blas_threads())))
             for t in (1, 2)}
    variants = {"as is": {}, "a": {("workers", "WAKE_SECONDS"): 1.0},
                "b": {("workers", "WAKE_SECONDS"): 2.0}}
    before = workers.WAKE_SECONDS
    runs = settings._in_turns(onces, variants, lambda: calls.append(("torch",)), rounds=3)
    assert workers.WAKE_SECONDS == before
    assert set(runs) == {(t, n) for t in (1, 2) for n in variants} | {"torch"}
    assert all(len(r) == 3 for r in runs.values())
    per_round = 2 * 4 + 1  # per thread count one untimed and three timed, then PyTorch
    assert len(calls) == 4 * per_round
    values = {before: "as is", 1.0: "a", 2.0: "b"}
    for r in range(4):
        chunk = calls[r * per_round : (r + 1) * per_round]
        assert chunk[-1] == ("torch",)
        for k, t in enumerate((1, 2)):
            ran = chunk[4 * k : 4 * k + 4]
            assert [c[0] for c in ran] == [t] * 4 and ran[0][1] == before  # the untimed one
            assert all(c[2] == {t} for c in ran)  # BLAS held to the thread count
            order = ["as is", "a", "b"]
            assert [values[c[1]] for c in ran[1:]] == order[r % 3:] + order[: r % 3]


def test_a_small_run_times_every_setting_and_restores_the_constants(real_weights, tmp_path,
                                                                    monkeypatch, capsys):
    monkeypatch.setenv("GATYS_WEIGHTS", str(real_weights))
    seen = []
    timed = settings._timed
    monkeypatch.setattr(settings, "_timed",
                        lambda once: (seen.append(winograd.TRANSFORM_COLUMNS), timed(once))[1])
    threads = "1,2" if cpus() >= 2 else "1"
    out = tmp_path / "settings.json"
    assert settings.main(["--size", "32", "--threads", threads, "--rounds", "2", "--no-torch",
                          "--variant", "winograd.TRANSFORM_COLUMNS=7", "--out", str(out)]) == 0
    assert winograd.TRANSFORM_COLUMNS == 16384
    counts = len(threads.split(","))
    assert sorted(seen) == [7] * 3 * counts + [16384] * 3 * counts  # warm-up round and two
    result = json.loads(out.read_text())
    assert result["variants"] == {"as is": {}, "winograd.TRANSFORM_COLUMNS=7":
                                  {"winograd.TRANSFORM_COLUMNS": 7}}
    (size,) = result["sizes"]
    assert size["size"] == 32 and size["torch_seconds"] is None
    assert [(r["threads"], r["variant"]) for r in size["rows"]] == [
        (int(t), v) for t in threads.split(",") for v in result["variants"]]
    for r in size["rows"]:
        assert len(r["seconds_all"]) == 2 and r["seconds"] > 0 and r["ratio"] is None
    table = capsys.readouterr().out.splitlines()
    assert table[1].startswith("32^2, median of 2 rounds in turns")
    assert table[3].split()[:3] == ["1", "as", "is"]


def _table(rows: list) -> list[str]:
    return settings.format_table({"variants": {}, "rounds": 5, "torch_threads": 2, "sizes": [
        {"size": 64, "rows": rows, "torch_seconds": 2.0}]}).splitlines()


def _rows() -> list:
    runs = {(2, "as is"): [1.0, 2.0, 1.0, 1.0, 1.0], (2, "v"): [0.9, 1.8, 0.96, 0.85, 0.8]}
    return settings.rows_of(runs, np.array([2.0, 4.0, 2.0, 2.0, 2.0]))


def test_each_variant_is_compared_with_the_engine_as_is_round_by_round():
    """The ratio to the engine as it is is taken within each round, so a round that ran slow
    for both moves neither; the ratio to PyTorch likewise against its evaluation of the round."""
    as_is, v = _rows()
    assert as_is["over_as_is"] is None and as_is["over_as_is_spread"] is None
    assert as_is["ratio"] == 0.5 and as_is["ratio_range"] == [0.5, 0.5]
    assert v["over_as_is"] == pytest.approx(0.9)  # the slow round's 1.8 / 2.0 is 0.9 too
    assert v["over_as_is_spread"] == pytest.approx([0.8, 0.85, 0.9, 0.96])
    assert v["seconds"] == pytest.approx(0.9) and v["ratio"] == pytest.approx(0.45)
    (no_torch,) = settings.rows_of({(1, "as is"): [1.0, 1.0]}, np.array([]))
    assert no_torch["ratio"] is None and no_torch["ratio_range"] is None
    table = _table([as_is, v])
    assert table[3].split()[4:] == ["-", "0.50", "[0.50-0.50]"]  # "as is": two words
    assert table[4].split()[3:] == ["0.900", "[0.850-0.900]", "0.45", "[0.40-0.48]"]


def test_the_table_keeps_long_variant_names_aligned():
    as_is, v = _rows()
    v["variant"] = "winograd.WINOGRAD_TWO_PASS_FROM_PART_BYTES=8388608"  # past 40 characters
    header, first, second = _table([as_is, v])[2:5]
    end = header.index("seconds") + len("seconds")  # the seconds below their heading
    assert first[:end].endswith("1.000") and second[:end].endswith("0.900")


def test_each_pending_variant_changes_a_constant_the_engine_has_not_taken_up():
    """What ``--pending`` runs on a lent host parses there, and each variant differs from the
    engine as it is: one the engine took up would time the engine against itself, and one
    naming a renamed constant would fail in the host's few minutes rather than here."""
    for text in settings.PENDING:
        assignments = settings.parse_variant(text)
        assert any(getattr(importlib.import_module(f"gatys.kernels.{module}"), name) != value
                   for (module, name), value in assignments.items()), text


def test_pending_adds_its_variants_before_those_named_and_says_what_each_changes(monkeypatch,
                                                                              capsys):
    got = {}

    def measure(sizes, threads, variants, rounds, with_torch, log):
        got.update(variants)
        return {"variants": {settings.AS_IS: {}, **{v: {} for v in variants}}, "rounds": rounds,
                "torch_threads": None, "sizes": []}

    monkeypatch.setattr(settings, "measure", measure)
    named = "workers.WAKE_SECONDS=1"
    assert settings.main(["--pending", "--variant", named, "--no-torch"]) == 0
    assert list(got) == [*settings.PENDING, named]
    lines = capsys.readouterr().out.splitlines()[1:]
    assert lines == [f"  {v}: {why}" for v, why in settings.PENDING.items()]
