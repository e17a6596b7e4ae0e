"""What gatys promises a careless or hostile user: the README's "What gatys promises", rule N
tested by the tests named test_ruleN_*: 1 sizes refused before anything is allocated, 2 nothing
blocks, 3 no input is lost, 4 signals end cleanly and writes are atomic, 5 numbers that overflow
are refused, 6 a work folder is evidence, not trust, 7 output names the OS accepts are
accepted, 8 writers check their destination, 9 paths are paths, 10 exit codes, 11 weights are
checked, 12 arrays and PIL images read like files."""
from __future__ import annotations

import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from PIL import Image

CLI_WITH_PEAK = Path(__file__).parent / "support" / "cli_peak.py"

def run_cli(*args, timeout=120, env=None):
    """(exit code, stderr, peak resident MB) of ``gatys ARGS`` in a child (the bench's way of
    measuring a child's own high-water mark, printed on its stdout)."""
    done = subprocess.run([sys.executable, str(CLI_WITH_PEAK), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    peak = [int(line.split()[1]) // 1024 for line in done.stdout.splitlines()
            if line.startswith("VmHWM:")]
    errors = "\n".join(line for line in done.stderr.splitlines() if line.strip())
    return done.returncode, errors, peak[0] if peak else None


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, real_weights):
    d = tmp_path_factory.mktemp("promises")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((30, 40, 3)) * 255).astype(np.uint8)).save(d / "photo.png")
    Image.fromarray((rng.random((40, 30, 3)) * 255).astype(np.uint8)).save(d / "painting.png")
    Image.new("L", (12000, 12000)).save(d / "huge.png")  # 140 KB on disk, 144 Mpx declared
    return d


def one_line_refusal(rc, err, code=2):
    assert rc == code, err
    assert err.count("\n") == 0 and err.startswith("gatys") and "Traceback" not in err


# --- rule 1: every size is checked before anything is allocated --------------------------------

@pytest.mark.parametrize("extra, says", [
    (["--size", "30000"], "use --size"),
    (["--size", "32", "--style-scale", "1e6"], "use --style-scale"),
])
def test_rule1_sizes_are_refused_before_anything_is_allocated(pictures, tmp_path, extra, says):
    rc, err, peak = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", "-o",
                            tmp_path / "o.png", "--iterations", "1", "--quiet", *extra)
    one_line_refusal(rc, err)
    assert says in err and peak < 300, (err, peak)
    assert not list(tmp_path.iterdir())


def test_rule1_a_picture_declaring_too_many_pixels_is_refused_from_its_header(pictures, tmp_path):
    rc, err, peak = run_cli("transfer", pictures / "huge.png", pictures / "painting.png", "-o",
                            tmp_path / "o.png", "--size", "32", "--quiet")
    one_line_refusal(rc, err)
    assert "12000x12000 px (144 Mpx)" in err and "Warning" not in err and peak < 300


def test_rule1_threads_are_bounded_and_no_impossible_size_is_suggested(pictures, tmp_path):
    rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", "-o",
                         tmp_path / "o.png", "--size", "9000", "--quiet",
                         env={"GATYS_THREADS": "99999"})
    one_line_refusal(rc, err)
    assert "--size 0 " not in err and "or less" in err


# --- rule 2: nothing blocks forever ------------------------------------------------------------

def test_rule2_a_pipe_is_refused_not_read(pictures, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    rc, err, _ = run_cli("transfer", fifo, pictures / "painting.png", "-o", tmp_path / "o.png",
                         "--size", "32", timeout=60)
    one_line_refusal(rc, err)
    assert "not a regular file" in err


# --- rule 3: no input is lost ------------------------------------------------------------------

@pytest.mark.parametrize("outputs, says", [
    (["-o", "{d}/photo.png"], "the output ({d}/photo.png) is the content image"),
    (["-o", "{d}/p2.png", "--plot", "{d}/painting.png"], "is style image 1"),
    (["-o", "{t}/o.png", "--plot", "{t}/o.png"], "are the same file"),
    (["-o", "{t}/o.png", "--init", "{t}/o.png"], "is the starting image"),
    (["-o", "{d}/photo.png", "--save-every", "1"], "is the content image"),
])
def test_rule3_an_output_never_replaces_an_input_or_another_output(pictures, tmp_path, outputs,
                                                                  says):
    (tmp_path / "o.png").write_bytes((pictures / "photo.png").read_bytes())
    before = {p: p.read_bytes() for p in (*pictures.iterdir(), tmp_path / "o.png")}
    args = [a.format(d=pictures, t=tmp_path) for a in outputs]
    rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", *args,
                         "--size", "32", "--iterations", "1", "--quiet")
    one_line_refusal(rc, err)
    assert says.format(d=pictures, t=tmp_path) in err
    assert {p: p.read_bytes() for p in before} == before


def test_rule3_the_api_guards_paths_given_as_path_objects(pictures, tmp_path):
    import gatys

    photo = tmp_path / "photo.png"
    photo.write_bytes((pictures / "photo.png").read_bytes())
    before = photo.read_bytes()
    with pytest.raises(gatys.OutputError, match="is the content image"):
        gatys.transfer(photo, pictures / "painting.png", photo, size=32, iterations=1)
    with pytest.raises(gatys.OutputError, match="are the same file"):
        gatys.transfer(pictures / "photo.png", pictures / "painting.png", tmp_path / "o.png",
                       plot=tmp_path / "o.png", size=32, iterations=1)
    assert photo.read_bytes() == before and not (tmp_path / "o.png").exists()


def test_rule3_save_every_files_may_not_be_an_input(pictures, tmp_path):
    photo = tmp_path / "o_00001.png"
    photo.write_bytes((pictures / "photo.png").read_bytes())
    rc, err, _ = run_cli("transfer", photo, pictures / "painting.png", "-o", tmp_path / "o.png",
                         "--save-every", "1", "--size", "32", "--iterations", "1", "--quiet")
    one_line_refusal(rc, err)
    assert "save_every would write over the content image" in err


def test_rule3_save_every_files_may_not_be_the_loss_plot(pictures, tmp_path):
    rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", "-o",
                         tmp_path / "o.png", "--save-every", "1", "--plot",
                         tmp_path / "o_00001.png", "--size", "32", "--iterations", "1", "--quiet")
    one_line_refusal(rc, err)
    assert "save_every would write over the loss plot" in err
    assert not list(tmp_path.iterdir())


def test_rule3_an_output_that_is_not_a_regular_file_is_never_renamed_over(pictures, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    nodes = {fifo: "a FIFO"}
    device = tmp_path / "null.png"
    try:  # a character device like /dev/null, made here (as root), never the real one
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        nodes[device] = "a device"
    except PermissionError:
        pass
    for node, kind in nodes.items():
        rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", "-o",
                             node, "--size", "32", "--iterations", "1", "--quiet")
        one_line_refusal(rc, err)
        assert f"it is {kind}, not a regular file" in err
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert device not in nodes or stat.S_ISCHR(device.lstat().st_mode)


def test_rule3_a_loop_of_links_is_one_line_as_output_and_as_photo(pictures, tmp_path):
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", "-o",
                         tmp_path / "a.png", "--size", "32", "--iterations", "1", "--quiet")
    one_line_refusal(rc, err)
    assert "loop of symbolic links" in err
    rc, err, _ = run_cli("transfer", tmp_path / "a.png", pictures / "painting.png", "-o",
                         tmp_path / "o.png", "--size", "32", "--iterations", "1", "--quiet")
    one_line_refusal(rc, err)


def test_rule3_a_figure_cell_never_replaces_its_photo(pictures, tmp_path):
    from gatys.batch.figure import ratio_text

    photo = tmp_path / f"fig2_B_painting_{ratio_text(1e-3)}.png"  # the name of a cell's image
    photo.write_bytes((pictures / "photo.png").read_bytes())
    before = photo.read_bytes()
    rc, err, _ = run_cli("figure", "2", "--content", photo, "--style", pictures / "painting.png",
                         "-o", tmp_path / "f.png", "--workdir", tmp_path, "--size", "32",
                         "--iterations", "1", "--jobs", "1", "--quiet")
    one_line_refusal(rc, err)
    assert "cell fig2_B_painting_1e-3's image" in err and "would destroy an input" in err
    assert photo.read_bytes() == before and not (tmp_path / "f.png").exists()


def test_rule3_a_sweep_never_replaces_its_painting_nor_takes_its_results_as_pictures(
        pictures, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    painting = out / "contact.png"  # the name of the sweep's contact sheet
    painting.write_bytes((pictures / "painting.png").read_bytes())
    before = painting.read_bytes()
    rc, err, _ = run_cli("sweep", "--content", pictures / "photo.png", "--style", painting,
                         "-o", out, "--size", "32", "--iterations", "1", "--jobs", "1", "--quiet")
    one_line_refusal(rc, err)
    assert "the contact sheet" in err and painting.read_bytes() == before
    # the folder it writes into is never read as a folder of pictures, on any run
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "photo.png").write_bytes((pictures / "photo.png").read_bytes())
    rc, err, _ = run_cli("sweep", "--content", photos, "--style", pictures / "painting.png",
                         "-o", photos, "--size", "32", "--iterations", "1", "--jobs", "1",
                         "--quiet")
    one_line_refusal(rc, err)
    assert "the sweep's results, not its inputs" in err
    assert sorted(p.name for p in photos.iterdir()) == ["photo.png"]


# --- rule 4: signals end cleanly ----------------------------------------------------------------

def _long_run_saving_every_iteration(pictures, tmp_path, until):
    """A transfer in a child, writing an image every iteration; returned once ``until``
    iterations are saved, so that signals sent now often land during a write."""
    out = tmp_path / "out.png"
    p = subprocess.Popen([sys.executable, "-m", "gatys", "transfer", pictures / "photo.png",
                          pictures / "painting.png", "-o", out, "--size", "48", "--iterations",
                          "5000", "--save-every", "1", "--quiet"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / f"out_{until:05d}.png").exists() and time.time() < deadline \
            and p.poll() is None:
        time.sleep(0.01)
    return out, p


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_rule4_a_signal_writes_the_image_reached_and_leaves_no_temp_file(pictures, tmp_path,
                                                                        sig, code):
    """Signals arrive while --save-every writes an image every iteration, so some land
    during a write; each command exits 128 + the signal, with the image written whole."""
    out, p = _long_run_saving_every_iteration(pictures, tmp_path, until=3)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert "Traceback" not in err and "Exception ignored" not in err
    with Image.open(out) as im:
        assert int(im.text["gatys:iterations_done"]) >= 3
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]


@pytest.mark.parametrize("gap", [0.0, 0.002, 0.02])
def test_rule4_a_second_ctrl_c_does_not_cut_the_stop_short(pictures, tmp_path, gap):
    out, p = _long_run_saving_every_iteration(pictures, tmp_path, until=2)
    p.send_signal(signal.SIGINT)
    time.sleep(gap)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert out.is_file() and not [f for f in tmp_path.iterdir() if f.name.startswith(".")]


def test_rule4_an_interrupt_in_the_wait_for_the_parts_reads_as_itself(monkeypatch):
    """An interrupt (SIGTERM's kind included) that lands while ``map`` waits for its parts
    (the calling thread waits once no part is left to take) is raised as itself once the
    parts running have finished. (The wait is a plain lock's: the ``threading.Event`` before
    it could turn a KeyboardInterrupt landing in its Condition into "RuntimeError: cannot
    release un-acquired lock", seen once in a Ctrl-C test.)"""
    import threading

    from gatys.io.signals import Terminated
    from gatys.kernels.workers import Workers

    real_lock = threading.Lock
    started: list[int] = []
    finished: list[int] = []

    def part(k: int) -> None:
        started.append(k)
        time.sleep(0.01 if threading.current_thread() is threading.main_thread() else 0.05)
        finished.append(k)  # a helper's part still running when the caller starts to wait

    class InterruptedWait:
        """A lock whose timed acquire (the main thread's wait) is interrupted."""

        def __init__(self) -> None:
            self.lock = real_lock()

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            if timeout != -1:
                raise Terminated()
            return self.lock.acquire(blocking, timeout)

        def release(self) -> None:
            self.lock.release()

    workers = Workers(2)
    workers.map(lambda part: None, range(4))  # its threads started (Thread.start waits too)
    monkeypatch.setattr(threading, "Lock", InterruptedWait)
    with pytest.raises(Terminated):
        workers.map(part, range(40))
    monkeypatch.undo()
    assert started and sorted(finished) == sorted(started)  # none still running when raised
    with pytest.raises(RuntimeError):  # a RuntimeError of the work itself stays one
        Workers(2).map(lambda part: (_ for _ in ()).throw(RuntimeError("real")), range(4))


def test_rule4_two_interrupted_runs_in_one_process_each_stop(pictures):
    """The stop state is the run's: after one interrupted run, the next one in the same process
    (a notebook, a sweep's worker) is stopped by its own Ctrl-C just as the first was."""
    import gatys
    from gatys.io import signals

    def interrupt_at_2(step, x):
        if step.iteration == 2:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)

    before = signal.getsignal(signal.SIGINT)  # an earlier in-process CLI test may ignore it
    for run in range(2):
        with signals.handled(), pytest.raises(gatys.Interrupted) as stopped:
            gatys.transfer(str(pictures / "photo.png"), str(pictures / "painting.png"),
                           size=32, iterations=30, init="noise", callback=interrupt_at_2)
        assert len(stopped.value.result.history) == 2, run
        assert signal.getsignal(signal.SIGINT) is before  # the block gives back what it found


def test_rule4_a_signal_during_a_write_waits_for_it(tmp_path):
    """The deferral itself: a signal inside an atomic write is raised once the file is in
    place."""
    from gatys.io import signals
    from gatys.io.atomic import atomic_path

    target = tmp_path / "f.bin"
    with signals.handled():
        with pytest.raises(signals.Terminated):
            with atomic_path(target) as tmp:
                tmp.write_bytes(b"whole")
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.1)  # delivered here, but held back
                tmp.write_bytes(b"whole file")
    assert target.read_bytes() == b"whole file"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_rule4_the_temporary_file_of_a_killed_write_is_removed_by_the_next_run(pictures,
                                                                             tmp_path):
    """kill -9 inside an atomic write leaves its temporary file; the next gatys run writing to
    that folder removes it, and nothing that may belong to a write still going on."""
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from gatys.io.atomic import atomic_path\n"
        "with atomic_path(Path(sys.argv[1])) as tmp:\n"
        "    tmp.write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"), tmp_path / "weights.onnx"])
    assert killed.returncode == -signal.SIGKILL
    stale = [p.name for p in tmp_path.glob(".gatys-*.tmp")]
    assert len(stale) == 1, stale
    from gatys.io.atomic import temp_prefix

    live = tmp_path / f"{temp_prefix()}writing.tmp"  # this test's own process: alive
    elsewhere = tmp_path / ".gatys-00000000-1-fromanotherhost.tmp"
    old_unmarked, new_unmarked = tmp_path / ".gatys-abc_1234.tmp", tmp_path / ".gatys-xyz.tmp"
    for p in (live, elsewhere, old_unmarked, new_unmarked):
        p.write_bytes(b"x")
    os.utime(old_unmarked, (time.time() - 2 * 86400,) * 2)
    rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", "-o",
                         tmp_path / "o.png", "--size", "32", "--iterations", "1", "--quiet")
    assert rc == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, elsewhere.name, new_unmarked.name, "o.png"])


# --- rule 5: numbers that overflow are refused, not run ----------------------------------------

@pytest.mark.parametrize("option", ["--ratio", "--tv-weight", "--content-weight", "--style-scale"])
def test_rule5_weights_beyond_float32_are_refused(pictures, tmp_path, option):
    rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", "-o",
                         tmp_path / "o.png", option, "1e308", "--size", "32", "--quiet")
    one_line_refusal(rc, err)
    assert "must be between" in err and not list(tmp_path.iterdir())


def test_rule5_a_loss_that_stops_being_finite_ends_the_run_and_keeps_the_last_finite_image(
        pictures, tmp_path, monkeypatch):
    import gatys
    from gatys.errors import GatysError
    from gatys.model.objective import Objective

    real = Objective.evaluate
    calls = []

    def poisoned(self, x, timer=None):
        ev = real(self, x, timer)
        calls.append(1)
        if len(calls) > 4:
            ev.total = float("nan")
        return ev

    monkeypatch.setattr(Objective, "evaluate", poisoned)
    out = tmp_path / "o.png"
    with pytest.raises(GatysError, match=r"became nan after \d+ iterations .*last finite image"):
        gatys.transfer(pictures / "photo.png", pictures / "painting.png", out, size=32,
                       iterations=50, seed=0)
    with Image.open(out) as im:
        assert 1 <= int(im.text["gatys:iterations_done"]) < 50
        assert np.isfinite(np.asarray(im, dtype=float)).all()


@pytest.mark.parametrize("option", ["ratio", "tv_weight", "style_scale", "iterations", "size"])
def test_rule5_a_truth_value_is_not_a_number(pictures, option):
    import gatys

    tiny = {"size": 32, "iterations": 1, option: True}  # should the check fail, a short run
    with pytest.raises(gatys.InputError, match=f"{option} must be"):
        gatys.transfer(pictures / "photo.png", pictures / "painting.png", **tiny)


# --- rule 6: a work folder is evidence, not trust ----------------------------------------------

def test_rule6_a_tampered_cell_image_is_computed_again(pictures, tmp_path):
    import json

    import gatys

    args = dict(size=32, iterations=2, jobs=1, workdir=tmp_path / "cells")
    first = gatys.figure(3, pictures / "photo.png", pictures / "painting.png",
                         tmp_path / "f.jpg", ratios="1e-3", **args)
    key = first.computed[0]
    (tmp_path / "cells" / f"{key}.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # a header only
    elsewhere = tmp_path / "elsewhere.png"
    elsewhere.write_bytes((pictures / "photo.png").read_bytes())
    other = first.computed[1]
    record = json.loads((tmp_path / "cells" / f"{other}.json").read_text())
    record["image"] = str(elsewhere)
    (tmp_path / "cells" / f"{other}.json").write_text(json.dumps(record))
    second = gatys.figure(3, pictures / "photo.png", pictures / "painting.png",
                          tmp_path / "f.jpg", ratios="1e-3", **args)
    assert sorted(second.computed) == sorted([key, other])
    assert second.records[other]["image"] == f"{other}.png"


def _one_cell_sweep(pictures, out):
    import gatys

    return gatys.sweep(pictures / "photo.png", pictures / "painting.png", out, jobs=1,
                       grid={"size": [32], "iterations": [1], "seed": [0]}, progress=False)


@pytest.mark.parametrize("damage", [
    lambda record: "[" * 100000,  # nested beyond any parser's patience
    lambda record: json.dumps({**record, "content_loss": "abc"}),
    lambda record: json.dumps({**record, "history": 5}),
    lambda record: json.dumps({**record, "seconds": None}),
    lambda record: json.dumps({**record, "iterations": "3"}),
])
def test_rule6_a_damaged_record_is_computed_again_in_one_line(pictures, tmp_path, caplog,
                                                              damage):
    first = _one_cell_sweep(pictures, tmp_path / "out")
    (key,) = first.records
    path = tmp_path / "out" / f"{key}.json"
    path.write_text(damage(json.loads(path.read_text())))
    with caplog.at_level("WARNING", logger="gatys"):
        again = _one_cell_sweep(pictures, tmp_path / "out")
    assert again.computed == [key]
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith(f"cell {key}: its record is damaged (")
    assert said.endswith("); computing it again") and "\n" not in said
    assert (tmp_path / "out" / "index.html").is_file()


def test_rule6_a_cell_image_linked_out_of_the_work_folder_is_not_reused(pictures, tmp_path):
    first = _one_cell_sweep(pictures, tmp_path / "out")
    (key,) = first.records
    image = tmp_path / "out" / f"{key}.png"
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(image.read_bytes())  # the same bytes: the recorded sha256 matches
    image.unlink()
    image.symlink_to(outside)
    again = _one_cell_sweep(pictures, tmp_path / "out")
    assert again.computed == [key]
    assert not image.is_symlink() and outside.read_bytes() == image.read_bytes()


def test_rule6_ratios_equal_to_six_digits_get_cells_of_their_own():
    from gatys.batch.figure import _fig3

    layout = _fig3("photo.png", "painting.png", [1.0000001e-3, 1.0000002e-3], {})
    keys = [cell.key for cell in layout.cells]
    assert len(set(keys)) == len(keys) == 10
    assert len(set(layout.column_labels)) == 2


def test_rule6_a_cell_that_fails_for_any_reason_fails_alone_and_is_tried_again(
        pictures, tmp_path, monkeypatch):
    import gatys
    from gatys.run import api

    real = api.transfer

    def flaky(content, *args, **kwargs):
        if "other" in str(content):
            raise RuntimeError("the machine ran out of something")
        return real(content, *args, **kwargs)

    other = tmp_path / "other.png"
    other.write_bytes((pictures / "photo.png").read_bytes())
    grid = {"size": [32], "iterations": [1], "seed": [0]}
    contents = [pictures / "photo.png", other]
    monkeypatch.setattr(api, "transfer", flaky)
    first = gatys.sweep(contents, pictures / "painting.png", tmp_path / "out", jobs=1,
                        grid=grid, progress=False)
    (failed,) = first.failed
    assert "RuntimeError: the machine ran out of something" in first.records[failed]["message"]
    assert len(first.records) == 2 and (tmp_path / "out" / "index.html").is_file()
    monkeypatch.setattr(api, "transfer", real)
    again = gatys.sweep(contents, pictures / "painting.png", tmp_path / "out", jobs=1,
                        grid=grid, progress=False)
    assert again.computed == [failed] and not again.failed


# --- rule 7: output names the OS accepts are accepted ------------------------------------------

def test_rule7_long_names_work_and_too_long_ones_are_one_line(pictures, tmp_path):
    longest = tmp_path / ("n" * 251 + ".png")  # 255 bytes, the usual NAME_MAX
    rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", "-o",
                         longest, "--size", "32", "--iterations", "1", "--quiet")
    assert rc == 0, err
    assert longest.is_file() and sorted(p.name for p in tmp_path.iterdir()) == [longest.name]
    rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", "-o",
                         tmp_path / ("n" * 296 + ".png"), "--size", "32", "--quiet")
    one_line_refusal(rc, err)
    assert "name is 300 bytes" in err


# --- rule 8: every writer checks its destination before the work -------------------------------

def test_rule8_bench_checks_its_output_before_timing_anything(tmp_path):
    rc, err, _ = run_cli("bench", "--size", "64", "--out", tmp_path / "missing" / "b.json",
                         "--no-torch", "--no-memory", timeout=60)
    assert rc == 2 and "does not exist" in err and "timing" not in err


# --- rule 9: paths are paths --------------------------------------------------------------------

def test_rule9_a_painting_with_a_comma_in_its_name_is_one_path(pictures, tmp_path):
    comma = tmp_path / "a,b.png"
    comma.write_bytes((pictures / "painting.png").read_bytes())
    rc, err, _ = run_cli("figure", "2", "--content", pictures / "photo.png", "--style", comma,
                         "--style", pictures / "painting.png", "-o", tmp_path / "f.jpg",
                         "--size", "32", "--iterations", "1", "--jobs", "1", "--quiet",
                         timeout=300)
    assert rc == 0, err
    records = sorted(p.name for p in (tmp_path / "f_cells").glob("*.json"))
    assert len(records) == 2 and any("_a-b_" in name for name in records)  # its stem, made safe


def test_rule9_a_name_that_is_not_utf8_is_read_written_and_recorded(pictures, tmp_path):
    folder = os.fsencode(tmp_path)
    photo = os.fsdecode(folder + b"/ph\xffoto.png")
    out = os.fsdecode(folder + b"/out\xfe.png")
    with open(photo, "wb") as f:
        f.write((pictures / "photo.png").read_bytes())
    done = subprocess.run([sys.executable, "-m", "gatys", "transfer", photo,
                           pictures / "painting.png", "-o", out, "--size", "32", "--iterations",
                           "1", "--quiet"], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert b"\\udcfe" in done.stdout  # the report names the output, escaped
    with Image.open(out) as im:
        assert im.text["gatys:content"].endswith("ph\\udcffoto.png")


def test_rule9_names_and_swept_values_are_text_on_a_results_page(pictures, tmp_path):
    """A file name or a swept value is shown on the sweep's page as the text it is, in the row
    headings, the column headings and the captions, never read as markup."""
    from html.parser import HTMLParser

    import gatys

    hostile = "<img src=x onerror=alert(1)>&amp;.png"
    (tmp_path / "in").mkdir()
    photo = tmp_path / "in" / hostile
    photo.write_bytes((pictures / "photo.png").read_bytes())
    start = tmp_path / "in" / "<i>start.png"  # a swept value on the rows: --init
    start.write_bytes((pictures / "photo.png").read_bytes())
    gatys.sweep(str(photo), str(pictures / "painting.png"), tmp_path / "out", jobs=1,
                progress=False, grid={"size": [32], "iterations": [1], "init": ["noise", str(start)],
                                      "ratio": [1e-3, 1e-4]})

    class Page(HTMLParser):
        tags: list[str] = []
        headings: list[str] = []
        inside = False

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.inside = tag == "th"

        def handle_endtag(self, tag):
            self.inside = False

        def handle_data(self, data):
            if self.inside:
                self.headings.append(data)

    page = Page()
    page.feed((tmp_path / "out" / "index.html").read_text())
    assert not {"i", "b"} & set(page.tags)
    assert page.tags.count("img") == 4  # the four thumbnails, no more
    assert page.headings == ["ratio 0.001", "ratio 0.0001",
                             f"{hostile} / painting.png, init noise",
                             f"{hostile} / painting.png, init {start}"]


# --- rule 10: exit codes say what went wrong ----------------------------------------------------

def test_rule10_exit_codes_are_the_documented_ones(pictures, tmp_path):
    out = tmp_path / "o.png"
    common = ["-o", out, "--size", "32", "--iterations", "1", "--quiet"]
    rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", *common,
                         "--seed", "0")
    assert rc == 0 and out.is_file(), err
    out.unlink()
    # 2: a bad argument or input, one line naming it, nothing written
    rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", *common,
                         "--size", "zero")
    one_line_refusal(rc, err)
    rc, err, _ = run_cli("transfer", tmp_path / "missing.png", pictures / "painting.png", *common)
    one_line_refusal(rc, err)
    assert "missing.png" in err and not out.exists()
    # 1: a weights file that is not a VGG-19
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx at all")
    rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", *common,
                         "--weights", junk)
    one_line_refusal(rc, err, code=1)
    assert "junk.onnx" in err and not out.exists()


def test_rule10_a_full_stdout_loses_the_message_not_the_work(pictures, tmp_path):
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "gatys", "transfer", pictures / "photo.png",
                               pictures / "painting.png", "-o", tmp_path / "o.png", "--size",
                               "32", "--iterations", "1", "--quiet"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "" and (tmp_path / "o.png").is_file()


def test_rule10_a_disk_that_fills_during_save_every_says_which_snapshots_are_kept(
        pictures, tmp_path, monkeypatch):
    import errno

    import gatys
    from gatys.io import images

    writes = []

    def filling(path, write):
        writes.append(path)
        if len(writes) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, write)

    real_write = images.atomic_write
    monkeypatch.setattr(images, "atomic_write", filling)
    out = tmp_path / "o.png"
    with pytest.raises(gatys.OutputError) as e:
        gatys.transfer(str(pictures / "photo.png"), str(pictures / "painting.png"), output=out,
                       size=32, iterations=5, save_every=1, init="noise", progress=False)
    assert str(e.value) == (f"cannot write {tmp_path / 'o_00003.png'}: No space left on device; "
                            "the run stopped, and the 2 snapshots written before it are kept "
                            "(o_00001.png to o_00002.png)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o_00001.png", "o_00002.png"]


def test_rule10_control_characters_in_a_name_are_escaped_in_messages(pictures, tmp_path):
    hostile = tmp_path / "a\x1b]0;owned\x07\x1b[2J.png"
    rc, err, _ = run_cli("transfer", hostile, pictures / "painting.png", "-o",
                         tmp_path / "o.png", "--size", "32", "--quiet")
    one_line_refusal(rc, err)
    assert "\x1b" not in err and "\x07" not in err and "a\\x1b]0;owned\\x07" in err


# --- rule 11: weights are checked ----------------------------------------------------------------

def test_rule11_weights_changed_since_they_were_built_are_refused(pictures, tmp_path,
                                                                  real_weights):
    from support.tamper import tampered_weights

    tampered = tampered_weights(real_weights, tmp_path / "tampered.onnx")
    out = tmp_path / "o.png"
    rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", "-o", out,
                         "--size", "32", "--iterations", "1", "--quiet", "--weights", tampered)
    one_line_refusal(rc, err, code=1)
    assert "checksum" in err and "tampered.onnx" in err and not out.exists()


def test_rule11_weights_naming_an_unknown_preprocessing_are_exit_1_naming_the_file(
        pictures, tmp_path, real_weights):
    import onnx

    model = onnx.load(str(real_weights))
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props},
                                        "gatys.preprocess": "bogus"})
    bogus = tmp_path / "bogus.onnx"
    onnx.save(model, str(bogus))
    out = tmp_path / "o.png"
    rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", "-o", out,
                         "--size", "32", "--iterations", "1", "--quiet", "--weights", bogus)
    one_line_refusal(rc, err, code=1)
    assert "bogus.onnx" in err and "'bogus'" in err and "--preprocess" in err
    assert not out.exists()


def test_rule11_an_empty_default_weights_file_says_how_to_rebuild_it(pictures, tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.touch()
    common = ["--size", "32", "--iterations", "1", "--quiet"]
    rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", "-o",
                         tmp_path / "o.png", *common, env={"GATYS_WEIGHTS": str(empty)})
    one_line_refusal(rc, err, code=1)
    assert "empty.onnx is empty (0 bytes)" in err and "gatys weights build --force" in err
    # a file the user names with --weights is theirs: named, but no advice to rebuild it
    rc, err, _ = run_cli("transfer", pictures / "photo.png", pictures / "painting.png", "-o",
                         tmp_path / "o.png", *common, "--weights", empty)
    one_line_refusal(rc, err, code=1)
    assert "empty.onnx is empty" in err and "build" not in err


# --- rule 12: arrays and PIL images read like files ----------------------------------------------

PNG_MODES = {  # what Pillow writes as a PNG, and the array that holds it
    "L": (np.uint8, ()), "RGB": (np.uint8, (3,)), "RGBA": (np.uint8, (4,)),
    "I;16": (np.uint16, ()), "1": (np.bool_, ()),
}


@given(mode=st.sampled_from(sorted(PNG_MODES)), h=st.integers(1, 9), w=st.integers(1, 9),
       data=st.data())
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_rule12_an_array_reads_as_the_same_picture_saved_as_a_png(tmp_path, mode, h, w, data):
    from gatys.io.images import read_image

    dtype, channels = PNG_MODES[mode]
    a = data.draw(hnp.arrays(dtype, (h, w, *channels)))
    path = tmp_path / f"{mode.replace(';', '')}.png"
    Image.fromarray(a).save(path)
    with Image.open(path) as im:
        assert im.mode == mode  # the file holds the array's mode
    np.testing.assert_array_equal(read_image(a, "content"), read_image(path, "content"))


@pytest.mark.parametrize("image, says", [
    (np.full((4, 5, 3), 7, np.int64), "is an array of int64"),
    (np.full((4, 5, 3), 128.0), "holds floats from 128 to 128: floats must be in [0, 1]"),
    (np.full((4, 5, 3), np.nan), "not finite"),
    (np.zeros((4, 5, 3), complex), "is an array of complex128 values"),
    (np.array([[object()]]), "is an array of object values"),
    (np.zeros((0, 0, 3), np.uint8), "is an empty array"),
    (np.zeros((4, 5, 2), np.uint8), "is an array of shape (4, 5, 2)"),
    (b"\x89PNG", "is given as bytes, the contents of a file"),
    (io.BytesIO(b"\x89PNG"), "is given as BytesIO, the contents of a file"),
])
def test_rule12_what_is_not_a_picture_is_refused_in_one_line(pictures, image, says):
    import warnings

    import gatys

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning on the way
        with pytest.raises(gatys.InputError, match=re.escape(says)) as refused:
            gatys.transfer(image, pictures / "painting.png", size=32, iterations=1)
    assert "\n" not in str(refused.value) and "the content image" in str(refused.value)


def test_rule12_a_pil_image_reads_as_its_file(tmp_path):
    from gatys.io.images import read_image

    rng = np.random.default_rng(0)
    grey16 = tmp_path / "grey16.png"
    Image.fromarray((rng.random((6, 8)) * 65535).astype(np.uint16)).save(grey16)
    rgba = tmp_path / "rgba.png"
    Image.fromarray((rng.random((6, 8, 4)) * 255).astype(np.uint8), "RGBA").save(rgba)
    for path in (grey16, rgba):
        with Image.open(path) as im:
            np.testing.assert_array_equal(read_image(im, "content"), read_image(path, "content"))
