"""`gatys figure`: the cells of Figs. 1-3, their records, resuming, parallel workers, layout,
loss plots and bad input. Tiny sizes; the real weights."""
from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import gatys
from gatys.errors import InputError, OutputError
from gatys.io.compose import GAP, Panel, compose

SIZE = 24  # the smallest that keeps a pixel at conv5_1 after four poolings


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, real_weights):
    d = tmp_path_factory.mktemp("figure")
    yy, xx = np.mgrid[0:36, 0:48] / 48.0
    photo = np.stack([xx, yy, 0.5 + 0.4 * np.sin(6 * xx) * np.cos(4 * yy)], axis=2)
    art = np.stack([0.5 + 0.5 * np.sin(20 * (xx + yy)), 0.3 + 0 * xx, 0.5 + 0.5 * np.cos(9 * xx)],
                   axis=2)
    paths = {}
    for name, a in (("photo", photo), ("art", art), ("art2", art[::-1, ::-1, ::-1]),
                    ("tall", art.transpose(1, 0, 2))):
        paths[name] = d / f"{name}.png"
        Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8)).save(paths[name])
    return paths


def _records(workdir):
    return {p.stem: json.loads(p.read_text()) for p in workdir.glob("*.json")}


def test_figure3_records_every_cell_and_a_rerun_computes_only_what_is_missing(pictures, tmp_path):
    out, work = tmp_path / "fig3.png", tmp_path / "cells"
    args = dict(ratios="1e-5,1e-2", size=SIZE, iterations=3, jobs=2, workdir=work)
    result = gatys.figure(3, pictures["photo"], pictures["art"], out, **args)
    assert len(result.records) == 10 and len(result.computed) == 10  # rows A-E x 2 ratios
    records = _records(work)
    assert set(records) == set(result.records)
    r = records["fig3_C_1e-2"]
    assert r["identity"]["arguments"]["style_layers"] == ["conv1_1", "conv2_1", "conv3_1"]
    assert r["identity"]["arguments"]["ratio"] == 0.01 and r["iterations"] == 3
    assert r["content_loss"] > 0 and r["style_loss"] > 0 and r["seconds"] > 0
    assert len(r["history"]) == 3 and (work / r["image"]).is_file()
    with Image.open(out) as im:  # 5 rows and 2 columns of 24x18 tiles, with labels around
        assert im.width > 2 * SIZE and im.height > 5 * 18

    again = gatys.figure(3, pictures["photo"], pictures["art"], out, **args)
    assert again.computed == [] and len(again.reused) == 10

    stamps = {p.name: p.stat().st_mtime_ns for p in work.glob("*.png")}
    for key in ("fig3_A_1e-5", "fig3_E_1e-2"):
        (work / f"{key}.json").unlink()
    (work / "fig3_B_1e-5.png").unlink()  # a record without its image does not count
    third = gatys.figure(3, pictures["photo"], pictures["art"], out, **args)
    assert sorted(third.computed) == ["fig3_A_1e-5", "fig3_B_1e-5", "fig3_E_1e-2"]
    for p in work.glob("*.png"):
        if p.stem not in third.computed:
            assert p.stat().st_mtime_ns == stamps[p.name]


def test_changed_parameters_or_inputs_recompute_the_cells(pictures, tmp_path):
    out, work = tmp_path / "fig.png", tmp_path / "cells"
    art = tmp_path / "art.png"
    art.write_bytes(pictures["art"].read_bytes())
    args = dict(ratios=[1e-3], size=SIZE, iterations=2, jobs=1, workdir=work)
    assert len(gatys.figure(3, pictures["photo"], art, out, **args).computed) == 5
    args["iterations"] = 3
    assert len(gatys.figure(3, pictures["photo"], art, out, **args).computed) == 5
    art.write_bytes(pictures["art2"].read_bytes())  # same name, other picture
    assert len(gatys.figure(3, pictures["photo"], art, out, **args).computed) == 5
    assert len(gatys.figure(3, pictures["photo"], art, out, **args).computed) == 0


def test_figure1_reconstructs_each_layer_and_each_growing_set(pictures, tmp_path):
    result = gatys.figure(1, pictures["photo"], pictures["tall"], tmp_path / "fig1.jpg",
                          size=SIZE, iterations=2)
    records = result.records
    content = [r for r in records.values() if r["identity"]["kind"] == "content"]
    style = [r for r in records.values() if r["identity"]["kind"] == "style"]
    assert [r["identity"]["arguments"]["layer"] for r in content] == list(gatys.DEFAULT_STYLE_LAYERS)
    assert [len(r["identity"]["arguments"]["layers"]) for r in style] == [1, 2, 3, 4, 5]
    assert all(r["style_loss"] == 0 for r in content) and all(r["content_loss"] == 0 for r in style)
    with Image.open(result.workdir / style[0]["image"]) as im:
        assert im.size == (18, SIZE)  # style reconstructions keep the painting's shape
    assert result.workdir == tmp_path / "fig1_cells"


def test_figure2_has_one_transfer_per_painting_with_the_papers_ratios(pictures, tmp_path):
    styles = [pictures["art"], pictures["art2"], pictures["tall"], pictures["art"]]
    result = gatys.figure(2, pictures["photo"], styles, tmp_path / "fig2.png", size=SIZE,
                          iterations=2, jobs=2)
    ratios = [r["identity"]["arguments"]["ratio"] for r in result.records.values()]
    assert ratios == [1e-3, 1e-3, 1e-3, 1e-4]  # B-D 1e-3, E on 1e-4 (the paper's Fig. 2)
    assert [k.split("_")[1] for k in result.records] == ["B", "C", "D", "E"]
    mixed = gatys.figure(2, pictures["photo"], f"{pictures['art']},{pictures['art2']}",
                         tmp_path / "two.png", ratios="1e-2", size=SIZE, iterations=2)
    assert [r["identity"]["arguments"]["ratio"] for r in mixed.records.values()] == [1e-2, 1e-2]


def test_compose_puts_labels_and_the_inset_in_the_bottom_left_corner():
    black = np.zeros((40, 60, 3))
    white = np.ones((10, 10, 3))
    picture = compose([[Panel(black, "A", inset=white), Panel(black, "B")]], tile=(60, 40),
                      inset_fraction=0.25)
    a = np.asarray(picture).astype(int)
    x, y = GAP, GAP  # no row or column labels: the first panel starts one gap in
    assert not a[y:y + 40, x + 20:x + 60].any() and not a[y:y + 25, x:x + 60].any()
    assert a[y + 39, x + 1].min() > 200 and a[y + 39, x + 30].max() < 30  # inset bottom left
    assert a[y + 42:y + 60, x:x + 60].min() < 100  # a label under the panel


def test_bad_figure_arguments(pictures, tmp_path):
    photo, art = pictures["photo"], pictures["art"]
    out = tmp_path / "f.png"
    cases = [
        (dict(number=4), InputError, "there is no figure 4"),
        (dict(number=1, ratios="1e-3"), InputError, "figure 1 has no alpha/beta"),
        (dict(number=3, style=[art, art]), InputError, "figure 3 takes one painting"),
        (dict(number=2, style=[art, art, art], ratios="1e-3,1e-4"), InputError, "one per painting"),
        (dict(number=3, ratios="1e-3,-1"), InputError, "ratios must be a positive"),
        (dict(number=3, jobs=0), InputError, "jobs must be an integer"),
        (dict(number=3, size=16), InputError, "too small for layer"),
        (dict(number=3, plot=tmp_path / "p.txt"), OutputError, "unknown extension"),
        (dict(number=3, workdir=art), OutputError, "cannot use work folder"),
        (dict(number=3, style=tmp_path / "missing.png"), InputError, "image not found"),
    ]
    for overrides, error, message in cases:
        kwargs = dict(number=3, content=photo, style=art, output=out, size=SIZE, iterations=1)
        kwargs.update(overrides)
        number = kwargs.pop("number")
        with pytest.raises(error, match=message):
            gatys.figure(number, **kwargs)
    assert not out.exists()


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch, pictures, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    with pytest.raises(InputError, match=r"pip install 'gatys\[plot\]'"):
        gatys.transfer(pictures["photo"], pictures["art"], size=SIZE, iterations=1,
                       plot=tmp_path / "l.png")


def test_loss_plots_of_a_transfer_and_of_a_figure(pictures, tmp_path):
    pytest.importorskip("matplotlib")
    result = gatys.transfer(pictures["photo"], pictures["art"], size=SIZE, iterations=3,
                            plot=tmp_path / "losses.png")
    assert len(result.history) == 3
    with Image.open(tmp_path / "losses.png") as im:
        assert im.width > 300 and np.asarray(im.convert("L")).std() > 10  # something drawn
    gatys.figure(3, pictures["photo"], pictures["art"], tmp_path / "f.png", ratios=[1e-3],
                 size=SIZE, iterations=2, plot=tmp_path / "cells.svg")
    assert (tmp_path / "cells.svg").read_text().count("<svg") == 1


def _gatys(*args):
    return [sys.executable, "-m", "gatys", *map(str, args)]


@pytest.mark.parametrize("how, jobs", [(signal.SIGINT, 1), (signal.SIGKILL, 2)])
def test_killed_figure_resumes_with_only_the_missing_cells(pictures, tmp_path, how, jobs):
    out, work = tmp_path / "fig3.png", tmp_path / "cells"
    command = _gatys("figure", 3, "--content", pictures["photo"], "--style", pictures["art"],
                     "-o", out, "--workdir", work, "--size", SIZE, "--iterations", 20, "--jobs", jobs,
                     "--ratios", "1e-3", "--quiet")
    p = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    deadline = time.time() + 120
    while len(list(work.glob("*.json"))) < 2 and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(how)
    _, err = p.communicate(timeout=60)
    if how == signal.SIGINT:
        assert p.returncode == 130 and "cells done, kept in" in err and "Traceback" not in err
    time.sleep(0.5)  # a worker orphaned by SIGKILL is told to stop (PR_SET_PDEATHSIG)
    done = set(_records(work))
    assert 2 <= len(done) < 5 and not out.exists()
    assert not list(work.glob(".*.tmp"))
    r = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{5 - len(done)} cells computed, {len(done)} reused" in r.stdout
    reused = [line.split()[0] for line in r.stdout.splitlines() if line.endswith("(reused)")]
    assert set(reused) == done


def test_figure_cli_errors_are_one_line(pictures, tmp_path):
    r = subprocess.run(_gatys("figure", 2, "--content", pictures["photo"], "--styles",
                              f"{pictures['art']},{tmp_path / 'nope.png'}", "-o",
                              tmp_path / "f.png"), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "image not found" in r.stderr
    r = subprocess.run(_gatys("figure", 5, "--content", pictures["photo"], "--style",
                              pictures["art"], "-o", tmp_path / "f.png"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "invalid choice" in r.stderr and r.stderr.count("\n") == 1


def test_stopping_the_cells_ends_only_the_pools_own_workers():
    """Ctrl-C on a figure terminates its worker processes, not other children of the process
    (a caller's own multiprocessing children, say)."""
    import multiprocessing
    import time
    from concurrent import futures

    from gatys.batch import executors

    context = multiprocessing.get_context("spawn")
    other = context.Process(target=time.sleep, args=(60,))
    other.start()
    pool = futures.ProcessPoolExecutor(1, mp_context=context)
    try:
        pool.submit(time.sleep, 60)
        deadline = time.monotonic() + 30
        while not [p for p in multiprocessing.active_children() if p is not other]:
            assert time.monotonic() < deadline, "the pool's worker never started"
            time.sleep(0.05)
        workers = [p for p in multiprocessing.active_children() if p is not other]
        executors.stop_pool(pool)
        deadline = time.monotonic() + 20
        while any(p.is_alive() for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(p.is_alive() for p in workers)
        assert other.is_alive()
    finally:
        other.terminate()
        other.join()
