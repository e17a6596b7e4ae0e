"""bench.scaling: the phase profile accounts for a whole evaluation, Amdahl's law is fitted
through the two measured points, the step of the GPU check writes its JSON, and bad arguments
are one line; bench.gil reads py-spy's samples. (Their figures are measured by running them, not
here.)"""
from __future__ import annotations

import json
import platform
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from gatys.bench import gil, harness, scaling, torch_peer
from gatys.bench.command import python_text
from gatys.kernels.workers import cpus, gil_enabled


def test_amdahl_goes_through_both_measurements_and_respects_the_cap():
    assert scaling.amdahl(4.0, 2.5, 1) == pytest.approx(4.0)
    assert scaling.amdahl(4.0, 2.5, 2) == pytest.approx(2.5)
    assert scaling.amdahl(4.0, 2.5, 16) == pytest.approx(1.0 + 3.0 / 16)  # s = 1, p = 3
    assert scaling.amdahl(4.0, 2.0, 8) == pytest.approx(0.5)  # all parallel
    assert scaling.amdahl(4.0, 4.4, 8) == pytest.approx(4.8 - 0.8 / 8)  # slower on two: worse
    assert scaling.amdahl(4.0, 1.5, 8) == pytest.approx(0.5)  # never better than t(1)/T
    assert scaling.amdahl(4.0, 2.0, 8, cap=2.0) == pytest.approx(2.0)  # memory: at most 2x



def test_the_benches_time_the_cpu_engine_users_run(random_full_vgg, monkeypatch):
    """The scaling benches make their objective on their own workers, with malloc keeping freed
    blocks as in every CPU backend (without it, each evaluation at 512^2 took 10,000 page
    faults, 152,000 with NumPy's huge pages off; with it, none)."""
    from gatys.bench import harness
    from gatys.kernels import devices
    from gatys.kernels.workers import Workers

    tuned = []
    monkeypatch.setattr(devices, "keep_freed_memory", lambda: tuned.append(True))
    workers = Workers(2)
    objective, _ = harness.cpu_objective(random_full_vgg, workers, 32)
    assert tuned and objective.network.backend.workers is workers


@pytest.mark.parametrize("vendor, default", [("AuthenticAMD", 0), ("GenuineIntel", 1), ("", 1)])
def test_the_malloc_heaps_are_read_from_the_environment(vendor, default, monkeypatch):
    """GATYS_MALLOC_ARENAS where it is a whole number of 0 or more, else a heap per thread on
    AMD's CPUs and one heap elsewhere."""
    from gatys.kernels import allocator

    monkeypatch.setattr(allocator, "cpu_vendor", lambda: vendor)
    for value, arenas in (("0", 0), ("1", 1), ("4", 4), ("-1", default), ("many", default)):
        monkeypatch.setenv("GATYS_MALLOC_ARENAS", value)
        assert allocator.arena_setting() == arenas
    monkeypatch.delenv("GATYS_MALLOC_ARENAS")
    assert allocator.arena_setting() == default


def test_the_cpu_vendor_is_read_from_cpuinfo(tmp_path):
    from gatys.kernels.allocator import cpu_vendor

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n")
    assert cpu_vendor(str(info)) == "AuthenticAMD"
    info.write_text("processor\t: 0\n")
    assert cpu_vendor(str(info)) == ""
    assert cpu_vendor(str(tmp_path / "missing")) == ""


def test_a_stream_copy_slower_on_two_threads_does_not_slow_the_memory_bound_phases():
    """A copy measured slower on two threads than on one (the machine's noise) once capped the
    pools and the losses below their own one-thread speed: the cap is now never below what
    the phase gained itself on two threads."""
    def run(T, pool, conv, gbs):
        return {"threads": T, "seconds": pool + conv, "torch_seconds": 4.0 / T ** 0.9,
                "bandwidth_gbs": gbs, "profile": {"seconds": pool + conv},
                "phases": {"pool forward": {"parallel": pool, "main": 0.0},
                           "conv forward": {"parallel": conv, "main": 0.0}}}

    result = {"runs": [run(1, 0.2, 1.8, 30.0), run(2, 0.12, 0.95, 24.0)]}
    p16 = scaling.predict(result, [16])[0]
    assert p16["stream_speedup"] < 1
    assert p16["phases"]["pool forward"] == pytest.approx(0.12)  # no slower than on two
    assert p16["seconds_uncapped"] == pytest.approx(0.05 + scaling.amdahl(1.8, 0.95, 16))
    assert p16["seconds"] > p16["seconds_uncapped"] and p16["ratio"] > p16["ratio_uncapped"]

def test_the_loss_products_scale_as_products_but_their_bytes_only_as_a_copy():
    """The loss products (eqs. 3 and 6) are fitted by Amdahl like the conv layers' products,
    not capped like the memory-bound phases, but never faster than their bytes at the copy's
    speed at T threads (the copy measured here: 30 GB/s on one thread, 40 on two)."""
    def run(T, products, rest, moved):
        return {"threads": T, "seconds": products + rest, "torch_seconds": None,
                "bandwidth_gbs": 30.0 if T == 1 else 40.0, "profile": {"seconds": products + rest},
                "phases": {scaling.PRODUCTS: {"parallel": products, "main": 0.0, "bytes": moved},
                           scaling.OUTSIDE: {"parallel": rest, "main": 0.0}}}

    copy16 = 1 / scaling.amdahl(1.0, 0.75, 16)  # the copy's speed-up at 16 threads, 1.9x
    # compute-bound: 1.2 GB take 0.04 s at 30 GB/s, a tenth of the products' 0.4 s
    few = scaling.predict({"runs": [run(1, 0.4, 0.1, 1.2e9), run(2, 0.21, 0.06, 1.2e9)]}, [16])
    assert few[0]["phases"][scaling.PRODUCTS] == pytest.approx(scaling.amdahl(0.4, 0.21, 16))
    assert few[0]["phases"][scaling.OUTSIDE] == pytest.approx(0.1 / copy16)  # the rest: capped
    # memory-bound: 9 GB would take 0.3 s at 30 GB/s, which the copy's speed-up divides
    many = scaling.predict({"runs": [run(1, 0.4, 0.1, 9e9), run(2, 0.21, 0.06, 9e9)]}, [16])
    assert many[0]["phases"][scaling.PRODUCTS] == pytest.approx(0.3 / copy16)
    assert many[0]["seconds_uncapped"] == pytest.approx(few[0]["seconds_uncapped"])
    # never more than the whole one-thread time: at one thread the fit is the measurement
    slow = scaling.predict({"runs": [run(1, 0.4, 0.1, 9e10), run(2, 0.21, 0.06, 9e10)]}, [1])
    assert slow[0]["seconds"] == pytest.approx(0.5)


def test_the_thread_counts_take_turns_ours_then_pytorchs_each_round(monkeypatch):
    """After a round of warm-ups, each round times ours then PyTorch's evaluation at one
    thread, then at two, under that many threads' limits: a round's speed-up pairs
    evaluations minutes apart at most."""
    order, inside = [], []  # the evaluations made; the thread count ``limited`` holds

    @contextmanager
    def limited(T, torch):
        inside.append(T)
        yield
        inside.pop()

    monkeypatch.setattr(scaling, "limited", limited)
    monkeypatch.setattr(scaling, "evaluation", lambda objective, x: lambda: order.append(
        ("ours", objective, inside[-1])))
    monkeypatch.setattr(scaling, "_timed", lambda once: once() or len(order))  # its place

    class Peer:
        def evaluate(self, x):
            order.append(("torch", x, inside[-1]))

    setups = [("one", "x1", None), ("two", "x2", None)]
    timings = scaling._timed_in_turns([1, 2], setups, Peer(), None, 2)
    a_round = [("ours", "one", 1), ("torch", "x1", 1), ("ours", "two", 2), ("torch", "x2", 2)]
    assert order == a_round * 3  # the warm-up round, then two timed
    # each evaluation's "seconds" is its place in the order: rounds 2 and 3 were timed
    assert [t["seconds_all"] for t in timings] == [[5, 9], [7, 11]]
    assert [t["torch_seconds_all"] for t in timings] == [[6, 10], [8, 12]]


def test_the_speed_ups_and_remainders_are_also_taken_round_by_round():
    """Round by round, ours' speed-up over PyTorch's is (ours t1 / t2) / (PyTorch's t1 / t2)
    and the serial remainder (t2 - t1 / 2) / t1, each round's own; their medians and spread
    are given, and printed."""
    def run(T, ours, theirs):
        return {"threads": T, "seconds": float(np.median(ours)), "seconds_all": ours,
                "torch_seconds": float(np.median(theirs)), "torch_seconds_all": theirs,
                "phases": {}}

    # the machine slows down in round 2 by a fifth, for both engines and thread counts
    result = {"runs": [run(1, [2.0, 2.4, 2.0], [3.0, 3.6, 3.0]),
                       run(2, [1.05, 1.26, 1.1], [1.5, 1.8, 1.5])]}
    scaling._serial_remainders(result)
    two = result["runs"][1]
    over, over_spread = two["speedup_over_torch_by_round"]
    assert over == pytest.approx((2.0 / 1.05) / 2.0)  # rounds 1 and 2 alike, round 3 below
    assert over_spread[0] == pytest.approx((2.0 / 1.1) / 2.0)
    share, shares = two["serial_remainder_share_by_round"]
    assert share == pytest.approx(0.025) and shares[-1] == pytest.approx(0.05)
    text = "\n".join(scaling.format_rounds(result["runs"]))
    assert "2 threads: speed-up over PyTorch's 0.952 [0.909" in text
    assert "remainder 2.5% [2.5% 2.5% 3.8% 5.0%]" in text
    assert scaling.format_rounds(result["runs"][:1]) == []


def test_the_profiled_remainder_is_split_into_the_main_thread_idle_threads_and_slower_work():
    """t(T) - t(1)/T of each phase, and of all, is exactly the main thread's time alone, the
    threads' idle time in the maps and the parts' work taking longer than on one thread, each
    in wall seconds; the tables print them and each layer's busy time over one thread's."""
    def run(T, conv, pool):
        rows = [{"direction": "forward", "layer": "conv1_1", "seconds": conv[0],
                 "parallel_seconds": conv[1], "busy_seconds": conv[2]},
                {"direction": "forward", "layer": "pool1", "seconds": pool[0],
                 "parallel_seconds": pool[1], "busy_seconds": pool[2]}]
        return {"threads": T, "seconds": conv[0] + pool[0], "seconds_all": [conv[0] + pool[0]],
                "torch_seconds": None, "torch_seconds_all": [], "phases": scaling.phases(rows),
                "profile": {"rows": rows}}

    # one thread: conv 1.0 s, all in its parts, 0.99 s busy; pool 0.2 s, 0.1 of it outside
    # two threads: conv's parts 0.55 s, the threads busy 1.05 s of it; pool 0.1 s, 0.05 outside
    result = {"runs": [run(1, (1.0, 1.0, 0.99), (0.2, 0.1, 0.1)),
                       run(2, (0.55, 0.55, 1.05), (0.1, 0.05, 0.1))]}
    scaling._serial_remainders(result)
    two = result["runs"][1]
    conv = two["phases"]["conv forward"]
    assert conv["remainder_split"] == pytest.approx(
        {"main": 0.0, "idle": (0.55 - 1.05 / 2) - (1.0 - 0.99) / 2, "slower work": 0.03})
    assert sum(conv["remainder_split"].values()) == pytest.approx(conv["serial_remainder"])
    assert conv["work_ratio"] == pytest.approx(1.05 / 0.99)
    pool = two["phases"]["pool forward"]
    assert pool["remainder_split"] == pytest.approx({"main": 0.0, "idle": 0.0,
                                                     "slower work": 0.0})
    whole = two["profile_remainder_split"]
    assert sum(whole.values()) == pytest.approx(0.65 - 1.2 / 2)
    assert whole["slower work"] == pytest.approx(0.03) and whole["main"] == pytest.approx(0.0)
    assert two["work_ratio"] == pytest.approx(1.15 / 1.09)
    text = "\n".join(scaling.format_split(result["runs"]))
    assert "T=2   all                   50.0 =   0.0 main +  20.0 idle +  30.0 slower work " \
           "(work 1.055)" in text
    assert "conv forward          50.0 =   0.0 main +  20.0 idle +  30.0 slower work " \
           "(work 1.061)" in text
    assert scaling.format_split(result["runs"][:1]) == []
    assert scaling.remainder_split(conv, conv, 1) == pytest.approx(
        {"main": 0.0, "idle": 0.0, "slower work": 0.0})


def test_the_prediction_is_also_made_from_each_profiled_round_alone():
    """Each profiled round's pair of evaluations (one and two threads, in turn) gives a
    prediction of its own, scaled to the alternated timing as the whole profile's is; the
    table gives their range beside the prediction from the rounds' medians."""
    def phases(conv, pool):
        return {"conv forward": {"parallel": conv, "main": 0.0},
                "pool forward": {"parallel": pool, "main": 0.0}}

    def run(T, rounds):  # the middle round is the median of the three below
        middle = rounds[1]
        return {"threads": T, "seconds": 2 * middle[0], "torch_seconds": 4.0 / T ** 0.9,
                "bandwidth_gbs": 20.0 * T, "profile": {"seconds": middle[0]},
                "phases": phases(*middle[1:]),
                "rounds": [{"seconds": t, "phases": phases(*p)} for t, *p in rounds]}

    ones = [(1.0, 0.9, 0.1), (1.0, 0.9, 0.1), (1.1, 1.0, 0.1)]  # (seconds, conv, pool)
    twos = [(0.55, 0.5, 0.05), (0.51, 0.46, 0.05), (0.56, 0.5, 0.06)]
    p16 = scaling.predict({"runs": [run(1, ones), run(2, twos)]}, [16])[0]
    copy16 = (1 / 20) / scaling.amdahl(1 / 20, 1 / 40, 16)  # the copy's speed-up at 16

    def alone(one: tuple, two: tuple) -> float:
        (t1, conv1, pool1), (_, conv2, pool2) = one, two
        pool = max(scaling.amdahl(pool1, pool2, 16), pool1 / max(copy16, pool1 / pool2, 1.0))
        # scaled by the alternated one-thread timing (2 s) over this round's own
        return (scaling.amdahl(conv1, conv2, 16) + pool) * 2.0 / t1

    rounds = [alone(a, b) for a, b in zip(ones, twos)]
    assert p16["seconds_by_round"] == pytest.approx(rounds)
    assert p16["seconds"] == pytest.approx(rounds[1])
    assert min(rounds) < rounds[1] < max(rounds)
    text = "\n".join(scaling.format_prediction([p16]))
    lo, hi = min(rounds), max(rounds)
    assert f"ours {p16['seconds']:.3f} s [{lo:.3f}–{hi:.3f} in 3 rounds]" in text
    ratio = f"[{lo / p16['torch_seconds']:.2f}–{hi / p16['torch_seconds']:.2f} in 3 rounds]"
    assert ratio in text


def test_the_profile_accounts_for_every_layer_and_the_rest(real_weights, tmp_path):
    # 64 px, not 32: on two threads the main thread's time between the loss products' maps
    # does not shrink with the image, and at 32 px it came near the share allowed below
    result = scaling.measure(64, [1, 2] if cpus() >= 2 else [1], pairs=1, profiled=1,
                             with_torch=False, log=lambda s: None)
    for run in result["runs"]:
        rows = run["profile"]["rows"]
        assert [r["layer"] for r in rows if r["direction"] == "forward"][:3] == [
            "conv1_1", "conv1_2", "pool1"]
        assert [r["layer"] for r in rows[-2:]] == [scaling.PRODUCTS, scaling.OUTSIDE]
        # five Gram matrices and five (G - A) F, each reading F at least: conv1_1's alone is
        # 64 x 64 x 64 floats, more than this bound
        assert rows[-2]["bytes"] > 2 * 64 * 32 * 32 * 4 and rows[-2]["seconds"] > 0
        # the five Gram matrices in one map; conv5_1's D F, which starts the backward sweep's
        # gradient, and the four D F added to it, a map each
        assert rows[-2]["maps"] == 6
        assert rows[-2]["parallel_seconds"] == pytest.approx(rows[-2]["seconds"], rel=0.2)
        assert all(0 <= r["parallel_seconds"] <= r["seconds"] * 1.001 + 1e-6 for r in rows)
        assert sum(r["seconds"] for r in rows) == pytest.approx(run["profile"]["seconds"])
        by_phase = sum(p["parallel"] + p["main"] for p in run["phases"].values())
        assert by_phase == pytest.approx(run["profile"]["seconds"])
        assert run["bandwidth_gbs"] > 0 and run["ratio"] is None
        idle = run["profile"]["idle_seconds"]
        assert run["profile"]["maps"] > 0 and set(idle) == set(scaling.IDLE)
        assert all(v >= 0 for v in idle.values())
        assert sum(idle.values()) <= run["threads"] * run["profile"]["seconds"]
        # the rows' maps, parts and idle seconds add up to the evaluation's (one profiled)
        assert sum(r["maps"] for r in rows) == run["profile"]["maps"]
        assert sum(r["parts"] for r in rows) >= run["profile"]["maps"]
        for cause in scaling.IDLE:
            assert sum(r["idle_seconds"][cause] for r in rows) == pytest.approx(idle[cause])
        assert [r["seconds"] for r in run["rounds"]] == [run["profile"]["seconds"]]
        if run["threads"] > 1:  # one round: its own remainder
            share, shares = run["serial_remainder_share_by_round"]
            assert share == pytest.approx(run["serial_remainder_share"]) and len(shares) == 4
        for name, alone in run["rounds"][0]["phases"].items():  # one round: its median
            assert alone == pytest.approx({k: run["phases"][name][k] for k in alone})
    one = result["runs"][0]
    assert one["speedup"] == 1.0 and one["serial_remainder"] == pytest.approx(0.0)
    if len(result["runs"]) == 2:  # at one thread the fit returns the measurement
        assert scaling.predict(result, [1])[0]["seconds"] == pytest.approx(one["seconds"])
    text = scaling.format_table({**result, "prediction": []})
    assert "loss products" in text and "the rest" in text and "conv backward" in text
    assert "idle in the workers' maps" in text
    if len(result["runs"]) == 2:  # the split adds up to the profiled evaluations' remainder
        two = result["runs"][1]
        assert sum(two["profile_remainder_split"].values()) == pytest.approx(
            two["profile"]["seconds"] - one["profile"]["seconds"] / 2)
        assert "the profiled serial remainder split" in text
    assert f"; Python {platform.python_version()}" in text.splitlines()[0]


def test_the_records_name_the_python_and_whether_it_ran_without_its_gil():
    """A free-threaded Python's figures, without the GIL, are not a GIL's: the machine record
    keeps which, and the tables say it (records made before say nothing)."""
    m = harness.machine()
    assert m["python"] == platform.python_version() and m["gil"] is gil_enabled()
    assert python_text({"python": "3.13.12", "gil": False}) == "; Python 3.13.12 without the GIL"
    assert python_text({"python": "3.11.7", "gil": True}) == "; Python 3.11.7"
    assert python_text({"cpu": "an older record"}) == ""


def test_a_maps_idle_time_is_split_by_cause():
    """Three threads, two of them taking parts: the one that took none is idle until the last
    part ends ("before"); then every thread until map returns ("after")."""
    from gatys.kernels.workers import Workers

    timer = scaling.PhaseTimer(Workers(3))
    # thread 1: parts 1-4 and 5-9 (a gap of 1); thread 2: one part 3-6; the map 0-10
    timer._count_idle(0.0, 10.0, [(1, 5.0, 9.0), (2, 3.0, 6.0), (1, 1.0, 4.0)])
    assert timer.maps == 1
    assert timer.idle == pytest.approx({"before": 1.0 + 3.0 + 9.0, "between": 1.0,
                                        "imbalance": 0.0 + 3.0, "after": 3 * 1.0})
    timer._count_idle(20.0, 21.0, [])  # a map of no parts: counted, nothing idle
    assert timer.maps == 2 and sum(timer.idle.values()) == pytest.approx(20.0)


def test_each_layers_maps_and_idle_are_its_own():
    """What the maps between a layer's start and stop add goes to that layer alone; a loss
    product's to the products; nothing to a layer whose maps come after it stopped."""
    from gatys.kernels.workers import Workers

    timer = scaling.PhaseTimer(Workers(2))
    timer.start()
    timer._count_idle(0.0, 4.0, [(1, 0.0, 4.0), (2, 1.0, 3.0)])  # 1 before, 1 imbalance
    timer.stop(timer.forward, "conv1_1")
    timer.start()
    timer.stop(timer.forward, "pool1")
    product = timer.timed_product(lambda: timer._count_idle(0.0, 2.0, [(1, 0.0, 1.0)]))
    product()  # one part, on one of two threads: the other idle for all of it
    assert timer.tallies[("forward", "conv1_1")] == pytest.approx(
        {"maps": 1, "parts": 2, "before": 1.0, "between": 0.0, "imbalance": 1.0, "after": 0.0})
    assert timer.tallies[("forward", "pool1")] == pytest.approx(
        dict.fromkeys(["maps", "parts", *scaling.IDLE], 0.0))
    assert timer.tallies[("-", scaling.PRODUCTS)] == pytest.approx(
        {"maps": 1, "parts": 1, "before": 1.0, "between": 0.0, "imbalance": 0.0, "after": 2.0})


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
    """At most threads the step also times the engine's split against tile rows only, one
    malloc heap against a heap per thread (each child process set as named), the Winograd
    parts' sizes in turns, samples the GIL's share, and times as many one-thread processes at
    once as threads against one alone."""
    monkeypatch.setattr(scaling, "STEP_THREADS", (1, 2, 3))
    monkeypatch.setattr(scaling, "cpus", lambda: 3)  # three threads, on whatever cores
    monkeypatch.setattr(scaling, "GIL_SECONDS", 1)
    monkeypatch.setattr(scaling, "ARENA_SECONDS", 1)
    monkeypatch.setattr(scaling, "ARENA_ROUNDS", 1)
    monkeypatch.setattr(scaling, "PART_ROUNDS", 2)
    monkeypatch.setattr(scaling, "SWITCH_ROUNDS", 2)
    monkeypatch.setattr(scaling, "default_threads", lambda pixels=0: 3 if pixels >= 48 ** 2 else 2)
    monkeypatch.setattr(scaling, "LARGE_SIDE", 48)
    from gatys.kernels import winograd
    chunks = []  # how parts are sized at each timed call: cache-sized, their least, bound
    switches = []  # the switch interval at each timed call, ms
    own = sys.getswitchinterval()

    def timed(f):
        chunks.append((winograd.cache_parts(), winograd.WINOGRAD_CACHED_PART_BYTES >> 20,
                       winograd.part_bytes(2) >> 20))
        switches.append(round(sys.getswitchinterval() * 1e3, 6))
        return harness_timed(f)

    harness_timed = scaling._timed
    monkeypatch.setattr(scaling, "_timed", timed)
    result = scaling.run_step(tmp_path, size=32, pairs=1, profiled=1)
    saved = json.loads((tmp_path / "cpu_scaling.json").read_text())
    assert [r["threads"] for r in saved["runs"]] == [1, 2, 3]
    assert result["summary"].startswith("3 threads at 32^2: ours ")
    assert [p["threads"] for p in saved["prediction"]] == [3]
    assert [v["name"] for v in saved["partition"]["variants"]] == [
        "own (3)", "like 3, by rows"]
    shared = saved["corun"]
    assert shared["processes"] == 3 and "ours" in shared["engines"]
    assert all(e["slowdown"] > 0 and len(e["together"]) == scaling.CORUN_ROUNDS
               for e in shared["engines"].values())
    assert "best speed-up on 3" in shared["table"]
    arenas = saved["malloc_arenas"]
    assert [r["malloc_arenas"] for r in arenas["runs"]["one heap"]] == [1]
    assert [r["malloc_arenas"] for r in arenas["runs"]["a heap per thread"]] == [0]
    for name in ("one heap", "a heap per thread"):
        assert arenas[name]["seconds_per_evaluation"] > 0 and arenas[name]["peak_bytes"] > 2 ** 20
    assert arenas["table"].splitlines()[2].startswith("  a heap per thread ")
    parts = saved["part_sizes"]
    assert list(parts["seconds"]) == ["a thread's share", "cache-sized",
                                      *map(str, scaling.PART_MEGABYTES)]
    assert all(len(r) == 2 for r in parts["runs"].values())  # the warm-ups not among them
    # the switch intervals' turns come after the parts': the engine's threads (2) and all
    # (3), each at the interpreter's interval and at 1 ms, then PyTorch's where it is installed
    with_torch = torch_peer.available()
    turn = [own * 1e3, 1.0, own * 1e3, 1.0] + [own * 1e3] * with_torch
    assert switches[-3 * len(turn):] == [round(ms, 6) for ms in turn] * 3
    assert sys.getswitchinterval() == own
    # a round of warm-ups, then two timed, in turns
    # on the engine's default threads at 32^2 (2), not all (3)
    assert chunks[-3 * len(turn) - 15 : -3 * len(turn)] == [
        (False, 8, 64), (True, 8, 64), (True, 2, 2), (True, 4, 4), (True, 16, 16)] * 3
    assert all(v > 0 for v in parts["seconds"].values())
    cached = winograd.cache_parts()
    assert parts["engine"] == ("cache-sized" if cached else "a thread's share")
    assert parts["engine_megabytes"] == [8 if cached else 16, 64]
    assert (winograd.WINOGRAD_CACHE_PARTS, winograd.WINOGRAD_CACHED_PART_BYTES,
            winograd.WINOGRAD_HELD_BYTES) == (None, 8 << 20, 128 << 20)
    assert parts["table"].startswith("Winograd parts at 2 threads, 32^2 (the engine's: ")
    assert "a thread's share 0." in parts["table"] and ", 16 MB " in parts["table"]
    switched = saved["switch_intervals"]
    assert [(r["threads"], r["interval_ms"]) for r in switched["rows"]] == [
        (2, own * 1e3), (2, 1.0), (3, own * 1e3), (3, 1.0)]
    assert all(len(r["seconds_all"]) == 2 and r["seconds"] > 0 for r in switched["rows"])
    assert all((r["ratio"] is not None) == with_torch for r in switched["rows"])
    assert switched["table"].splitlines()[2] == \
        f"    2 threads, 1 ms: {switched['rows'][1]['seconds']:.3f} s" + (
            f", ours/torch {switched['rows'][1]['ratio']:.2f}" if with_torch else "")
    # sampled where py-spy is installed and may read the child, else the reason why not
    assert saved["gil"].get("error") or 0 < saved["gil"]["share"] <= 1.05
    # the small images' default threads (2), the large ones' and all (3), in turns at the
    # step's size (32) and at LARGE_SIDE (48)
    chosen = saved["thread_counts"]
    assert [s["size"] for s in chosen["sizes"]] == [32, 48]
    for s in chosen["sizes"]:
        assert [(r["threads"], r["variant"], len(r["seconds_all"])) for r in s["rows"]] == [
            (2, "as is", scaling.LARGE_ROUNDS), (3, "as is", scaling.LARGE_ROUNDS)]
    assert chosen["table"].splitlines()[1].startswith("32^2, median of 2 rounds in turns")
    assert "48^2, median of 2 rounds in turns" in chosen["table"]


def test_the_partition_bench_cuts_as_many_threads_would_and_times_every_layer(real_weights):
    """bench.partition: its workers cut jobs as ``like`` threads would (so the layers choose
    their split as there), its three partitions are timed layer by layer, and the engine's
    setting is restored after."""
    from gatys.bench import partition
    from gatys.kernels import winograd

    workers = partition.Partitioned(1, 16)
    assert len(workers.per_thread(512)) == 16 and len(workers.split(8, 8)) == 8
    U = np.empty((36, 512, 512), np.float32)
    parts, moved = winograd._parts(workers, 16, 36 * 1024 * 16 * 4, U, np)
    assert len(parts) == 16
    assert winograd._blocks(workers, 512, 512, 36 * 16 * 16 * 4, U, moved,
                            36 * 1024 * 16 * 4) == (16, 16, 1)
    r = partition.measure(32, 4, 1, 1)
    assert [v["split"] for v in r["variants"]] == [None, None, "rows"]
    assert [v["partition_threads"] for v in r["variants"]] == [1, 4, 4]
    for v in r["variants"]:
        assert v["seconds"] > 0 and v["layers"][-1]["layer"] == "conv5_1"
        assert all(row["forward_seconds"] > 0 for row in v["layers"])
        layers = sum(row["forward_seconds"] + row["backward_seconds"] for row in v["layers"])
        assert v["outside_layers_seconds"] == pytest.approx(v["seconds"] - layers)  # one lap
        assert v["outside_layers_seconds"] > 0  # the losses
    assert winograd.WINOGRAD_SPLIT is None
    table = partition.format_table(r).splitlines()
    assert "like 4, by rows" in table[1] and table[-2].startswith("losses")


def test_gil_share_is_read_from_py_spys_raw_samples():
    raw = ("MainThread;evaluate (gatys/model/objective.py:150);_transform "
           "(kernels/winograd.py:70) 30\n"
           "gatys_0;run (threading.py:1);outputs (kernels/winograd.py:170) 10\n"
           "garbage line\n")
    r = gil.held(raw, seconds=2, rate=100)
    assert r["samples"] == 40 and r["share"] == pytest.approx(0.2)
    assert r["where"][0] == {"frame": "_transform (kernels/winograd.py:70)", "share": 0.75}


def test_gil_loop_evaluates_a_partition_and_says_when_it_is_ready(real_weights, monkeypatch):
    import io

    # its peak is the process's own (VmHWM), not ru_maxrss, which a child inherits
    monkeypatch.setattr(gil, "high_water_bytes", lambda: 12345678)
    report = io.StringIO()
    r = gil.loop(like=4, size=32, seconds=0.0, report=report)
    assert report.getvalue() == "ready\n"
    assert r["evaluations"] == 1 and r["seconds_per_evaluation"] > 0
    assert r["window"][1] > r["window"][0]  # on perf's clock, for bench.gil_waits
    assert r["peak_bytes"] == 12345678


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_child_reports_its_own_peak_not_its_large_parents():
    """Linux carries a forking parent's high-water mark into the child's ru_maxrss: the GPU
    check's children (bench.gil's loop, the malloc heaps) reported 5.06 GiB at 512^2 where
    the same loop from a small parent peaked at 0.99 GiB."""
    import subprocess

    held = np.ones(384 << 20, dtype=np.uint8)  # the parent's resident size grows by 384 MB
    done = subprocess.run([sys.executable, "-c", "from gatys.bench.peak import high_water_bytes;"
                           " print(high_water_bytes())"], capture_output=True, text=True,
                          check=True)
    child = int(done.stdout.strip())
    assert 1 << 20 < child < 256 << 20, child
    del held


def test_gil_without_py_spy_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(gil.shutil, "which", lambda name: None)
    assert gil.main(["--size", "32", "--seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install py-spy" in err
    assert gil.main(["--like", "0"]) == 2


@pytest.mark.skipif(shutil.which("py-spy") is None, reason="py-spy is not installed")
def test_gil_samples_a_real_loop(real_weights):
    try:
        r = gil.measure(like=2, size=64, seconds=1, rate=100)
    except RuntimeError as e:  # no ptrace rights here: say so rather than pass
        pytest.skip(str(e))
    assert 0 < r["share"] <= 1.05 and r["evaluations"] >= 1
    assert r["held_seconds_per_evaluation"] <= r["seconds_per_evaluation"] * 1.05
