"""``gatys sweep``: the grid (command line and TOML), the executors (in this process, local
processes, a real Dask LocalCluster on 127.0.0.1), faults (a worker killed mid-cell, a bad
picture, a scheduler that is not there), resuming, and the results page in a real browser."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

import gatys
from gatys.batch.grid import build_grid, expand_pictures, layer_range, values_from_text
from gatys.batch.sweep import sweep
from gatys.errors import GatysError, InputError

distributed = pytest.importorskip("distributed")

SMALL = {"size": "32", "iterations": "3", "seed": "0"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two photos and two paintings, as files in folders, and a file that is not a picture."""
    d = tmp_path_factory.mktemp("sweep")
    yy, xx = np.mgrid[0:24, 0:32] / 32.0
    pictures = {
        "photos/a.png": np.stack([xx, yy, 0.5 + 0 * xx], axis=2),
        "photos/b.png": np.stack([yy, 0.3 + 0 * xx, xx], axis=2),
        "paintings/stripes.png": np.stack([0.5 + 0.5 * np.sin(30 * xx)] * 3, axis=2),
        "paintings/dots.png": np.stack([0.5 + 0.5 * np.sin(20 * xx) * np.sin(20 * yy)] * 3, axis=2),
    }
    for name, a in pictures.items():
        (d / name).parent.mkdir(exist_ok=True)
        Image.fromarray((a * 255).astype(np.uint8)).save(d / name)
    (d / "broken").mkdir()
    (d / "broken" / "c.png").write_bytes(b"not a picture at all")
    return d


def records_of(result):
    return {k: r for k, r in result.records.items()}


# --- the grid ---------------------------------------------------------------------------------

def test_values_from_the_command_line():
    assert values_from_text("ratio", "1e-4,1e-3") == [1e-4, 1e-3]
    assert values_from_text("seed", "0,1,2") == [0, 1, 2]
    assert values_from_text("style_layers", "conv1_1..conv3_1,conv1_1..conv5_1") == [
        ["conv1_1", "conv2_1", "conv3_1"], ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]]
    assert values_from_text("style_layers", "conv1_1,conv2_1;conv5_1") == [
        ["conv1_1", "conv2_1"], ["conv5_1"]]
    assert values_from_text("style_layers", "conv1_1,conv2_1") == [["conv1_1", "conv2_1"]]
    assert values_from_text("iterations", "100;50,20") == [100, [50, 20]]
    assert values_from_text("tf32", "true,false") == [True, False]
    assert layer_range("conv3_1..conv3_4") == ["conv3_1", "conv3_2", "conv3_3", "conv3_4"]
    with pytest.raises(InputError, match="--seed"):
        values_from_text("seed", "0,x")
    with pytest.raises(InputError, match="layer range"):
        layer_range("conv5_1..conv1_1")


def test_grid_product_zip_and_fixed_options(folder):
    grid = build_grid([folder / "photos"], [folder / "paintings" / "*.png"],
                      {"ratio": "1e-4,1e-3,1e-2", "seed": "0,1,2", "size": "32"},
                      zip_groups=["ratio,seed"])
    cells = grid.cells()
    assert len(cells) == 2 * 2 * 3  # photos x paintings x the zipped (ratio, seed) pairs
    assert {(c.arguments["ratio"], c.arguments["seed"]) for c in cells} == {
        (1e-4, 0), (1e-3, 1), (1e-2, 2)}
    assert all(c.arguments["size"] == 32 for c in cells)
    assert len({c.key for c in cells}) == len(cells)
    product = build_grid([folder / "photos" / "a.png"], [folder / "paintings"],
                         {"ratio": "1e-4,1e-3", "seed": "0,1"}).cells()
    assert len(product) == 2 * 2 * 2


def test_grid_from_toml_with_the_command_line_on_top(folder):
    toml = folder / "sweep.toml"
    toml.write_text('content = ["photos/a.png"]\nstyle = "paintings"\nzip = [["ratio", "seed"]]\n'
                    '[grid]\nratio = [1e-4, 1e-3]\nseed = [0, 1]\n'
                    'style_layers = ["conv1_1..conv2_1", ["conv1_1", "conv5_1"]]\nsize = 32\n')
    grid = build_grid([], [], {}, toml)
    assert grid.contents == [str(folder / "photos" / "a.png")]
    assert grid.swept["style_layers"] == [["conv1_1", "conv2_1"], ["conv1_1", "conv5_1"]]
    assert len(grid.cells()) == 2 * 2 * 2
    over = build_grid([], [], {"size": "24,32", "ratio": "1e-3,1e-2"}, toml)
    assert over.swept["size"] == [24, 32] and over.swept["ratio"] == [1e-3, 1e-2]
    assert over.zip == [["ratio", "seed"]] and len(over.cells()) == 2 * 2 * 2 * 2
    with pytest.raises(InputError, match="ratio is not swept"):  # the file's zip still holds
        build_grid([], [], {"ratio": "1e-3"}, toml).cells()


@pytest.mark.parametrize("text, message", [
    ('content = 5', "content must be a picture's path or a list of them, got 5"),
    ('content = ["photos/a.png", 3]', "content must be a picture's path"),
    ('style = "paintings"\n[grdi]\nratio = [1e-3]', r"unknown table \[grdi\]"),
    ('grid = 5', r"grid must be a table \(\[grid\]\) of options, got 5"),
    ('zip = 5', "zip must be a list of groups of option names"),
    ('[grid]\nratio = []', "ratio has no values: give at least one"),
    ('[grid]\nratio = "abc"', "ratio must be a number, got 'abc'"),
    ('[grid]\nseed = {a = 1}', "seed must be an integer"),
])
def test_a_sweep_file_of_the_wrong_shape_is_refused_in_one_line(folder, text, message):
    """Issue 30: wrong types, unknown tables and empty lists in the TOML file are bad input
    naming the file or the option, never a traceback or a silently ignored entry."""
    toml = folder / "bad.toml"
    toml.write_text(text + "\n")
    with pytest.raises(InputError, match=message):
        build_grid([folder / "photos" / "a.png"], [folder / "paintings"], {}, toml).cells()


def test_the_api_grid_refuses_empty_value_lists_and_keys_that_are_not_names(folder):
    for given, message in (({"ratio": []}, "ratio has no values"),
                           ({5: [1]}, "keys must be option names")):
        with pytest.raises(InputError, match=message):
            build_grid([folder / "photos" / "a.png"], [folder / "paintings"], given)


@pytest.mark.parametrize("args, message", [
    (dict(swept={"ratio": "1e-3,-1"}), "ratio must be a positive"),
    (dict(swept={"seed": "0,0"}), "the same cell twice"),
    (dict(swept={"ratio": "1e-4,1e-3", "seed": "0,1,2"}, zip_groups=["ratio,seed"]),
     "zip pairs lists of one length"),
    (dict(swept={"ratio": "1e-4,1e-3"}, zip_groups=["ratio,seed"]), "seed is not swept"),
    (dict(contents=["nowhere/*.png"]), "matches no file"),
    (dict(contents=["missing.png"]), "content not found"),
    (dict(styles=["EMPTY"]), "has no pictures"),
])
def test_bad_grids_are_refused_before_anything_runs(folder, args, message, tmp_path):
    (tmp_path / "EMPTY").mkdir()
    contents = [str(folder / "photos")] if "contents" not in args else args["contents"]
    styles = [str(folder / "paintings")] if "styles" not in args else [
        str(tmp_path / s) for s in args["styles"]]
    with pytest.raises(InputError, match=message):
        build_grid(contents, styles, args.get("swept", {}), None,
                   args.get("zip_groups", ())).cells()


def test_pictures_from_files_patterns_and_folders_in_order(folder):
    got = expand_pictures([folder / "photos" / "b.png", folder / "photos", str(folder / "photos" / "*.png")],
                          "content")
    assert got == [str(folder / "photos" / "b.png"), str(folder / "photos" / "a.png")]


# --- running ----------------------------------------------------------------------------------

def test_local_dask_cluster_gives_the_in_process_records_and_a_rerun_computes_nothing(
        real_weights, folder, tmp_path):
    grid = {"ratio": "1e-3,1e-2,1e-1", **SMALL}
    kwargs = dict(grid=grid, progress=False)
    here = sweep([folder / "photos" / "a.png"], [folder / "paintings"], tmp_path / "here",
                 jobs=1, **kwargs)
    there = sweep([folder / "photos" / "a.png"], [folder / "paintings"], tmp_path / "there",
                  dask_workers=2, **kwargs)
    assert len(here.records) == len(there.records) == 6 and not there.failed
    for key, r in here.records.items():
        assert there.records[key]["total_loss"] == pytest.approx(r["total_loss"], rel=1e-4)
        assert there.records[key]["identity"] == r["identity"]
    again = sweep([folder / "photos" / "a.png"], [folder / "paintings"], tmp_path / "there",
                  dask_workers=2, **kwargs)
    assert again.computed == [] and again.records == there.records


def test_a_bad_picture_fails_its_cells_and_the_others_finish(real_weights, folder, tmp_path):
    result = sweep([folder / "photos" / "a.png", folder / "broken" / "c.png"],
                   [folder / "paintings" / "dots.png"], tmp_path / "out",
                   grid={"ratio": "1e-3,1e-2", **SMALL}, dask_workers=2, progress=False)
    assert len(result.records) == 4 and len(result.failed) == 2
    for key in result.failed:
        assert key.startswith("c_") and "not an image" in result.records[key]["message"]
        assert not (tmp_path / "out" / f"{key}.png").exists()
    rerun = sweep([folder / "photos" / "a.png", folder / "broken" / "c.png"],
                  [folder / "paintings" / "dots.png"], tmp_path / "out",
                  grid={"ratio": "1e-3,1e-2", **SMALL}, jobs=2, progress=False)
    assert rerun.computed == []  # the same bad input fails the same way: not run again


def test_a_worker_killed_mid_cell_has_its_cell_rerun_and_recorded_once(real_weights, folder,
                                                                        tmp_path):
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    killed = []

    def kill_one_busy_worker() -> None:
        with distributed.Client(cluster.scheduler_address, timeout="10s") as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                busy = [w for w, tasks in client.processing().items() if tasks]
                if busy:
                    time.sleep(0.5)  # well inside the cell
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
                time.sleep(0.05)

    try:
        killer = threading.Thread(target=kill_one_busy_worker)
        killer.start()
        result = sweep([folder / "photos" / "a.png"], [folder / "paintings"], tmp_path / "out",
                       grid={"ratio": "1e-3,1e-2,1e-1", "size": "48", "iterations": "25",
                             "seed": "0"}, scheduler=cluster.scheduler_address, progress=False)
        killer.join()
    finally:
        cluster.close()
    assert killed, "no worker was ever busy"
    assert len(result.records) == 6 and not result.failed
    records = sorted(p.name for p in (tmp_path / "out").glob("*.json"))
    assert len(records) == 6 == len(set(records))
    assert len(list((tmp_path / "out").glob("*.png"))) == 6 + 1  # the cells and contact.png


def test_no_scheduler_there_is_one_line_and_exit_1(folder, tmp_path):
    done = subprocess.run([sys.executable, "-m", "gatys", "sweep", "--content",
                           str(folder / "photos"), "--style", str(folder / "paintings"),
                           "-o", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9",
                           "--size", "32", "--quiet"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "cannot reach the Dask scheduler" in done.stderr


def test_without_dask_the_message_says_how_to_install_it(folder, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(InputError, match=r"pip install 'gatys\[dask\]'"):
        sweep([folder / "photos"], [folder / "paintings"], tmp_path / "out",
              grid=SMALL, dask_workers=2)


def test_jobs_and_dask_together_are_refused(folder, tmp_path):
    with pytest.raises(InputError, match="jobs is for local worker processes"):
        sweep([folder / "photos"], [folder / "paintings"], tmp_path / "out", grid=SMALL,
              jobs=2, dask_workers=2)


# --- the page ---------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (.ci/run installs Debian's)")
def test_the_page_loads_every_picture_in_a_real_browser(real_weights, folder, tmp_path):
    result = sweep([folder / "photos" / "a.png", folder / "broken" / "c.png"], [folder / "paintings"],
                   tmp_path / "out", grid={"ratio": "1e-3,1e-2", **SMALL}, jobs=1,
                   progress=False)
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--virtual-time-budget=10000"]
    url = result.page.resolve().as_uri()
    dom = subprocess.run(browser + ["--dump-dom", url], capture_output=True, text=True,
                         timeout=120).stdout
    good = len(result.records) - len(result.failed)
    assert good == 4 and len(result.failed) == 4
    assert f'data-loaded="{good}"' in dom and 'data-broken="0"' in dom
    assert dom.count("<figure data-cell=") == good
    assert dom.count('<div class="failed" data-cell=') == len(result.failed)
    shot = tmp_path / "page.png"
    subprocess.run(browser + ["--window-size=1200,900", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120)
    with Image.open(shot) as im:
        assert im.size == (1200, 900) and len(np.unique(np.asarray(im.convert("L")))) > 50
    with Image.open(result.contact_sheet) as sheet:
        assert sheet.height > sheet.width  # four rows (photos x paintings), two ratios
    assert json.loads((tmp_path / "out" / f"{result.failed[0]}.json").read_text())["failed"]


def test_the_cli_sweeps_and_prints_a_table(real_weights, folder, tmp_path):
    done = subprocess.run([sys.executable, "-m", "gatys", "sweep", "--content",
                           str(folder / "photos" / "a.png"), "--style", str(folder / "paintings"),
                           "-o", str(tmp_path / "out"), "--ratio", "1e-3,1e-2", "--size", "32",
                           "--iterations", "2", "--jobs", "1", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "4 cells over ratio: 4 computed, 0 reused, 0 failed" in done.stdout


def test_the_cli_exits_1_when_a_cell_failed_after_finishing_the_others(real_weights, folder,
                                                                     tmp_path):
    """A sweep goes on past a failed cell, but a script running it must see the failure."""
    done = subprocess.run([sys.executable, "-m", "gatys", "sweep", "--content",
                           str(folder / "photos" / "a.png"), "--content",
                           str(folder / "broken" / "c.png"),
                           "--style", str(folder / "paintings" / "dots.png"),
                           "-o", str(tmp_path / "out"), "--size", "32", "--iterations", "2",
                           "--jobs", "1", "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "2 cells: 2 computed, 0 reused, 1 failed" in done.stdout, done.stdout
    assert done.stderr.splitlines()[-1].startswith("gatys: 1 of 2 cells failed (")
    assert "the others are kept" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(list((tmp_path / "out").glob("a_*.png"))) == 1  # the good cell is kept
    assert gatys.InputError  # the public error types stay importable from the package
    assert isinstance(GatysError("x"), Exception)


def test_ctrl_c_cancels_the_clusters_cells_keeps_the_done_ones_and_exits_130(real_weights, folder,
                                                                          tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "gatys", "sweep", "--content", str(folder / "photos"),
               "--style", str(folder / "paintings"), "-o", str(out), "--ratio",
               "1e-3,1e-2", "--size", "32", "--iterations", "20", "--seed", "0",
               "--dask-workers", "2", "--quiet"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert "cells done, kept in" in stderr
    done = len(list(out.glob("*.json")))
    assert 1 <= done < 8
    rerun = sweep([folder / "photos"], [folder / "paintings"], out,
                  grid={"ratio": "1e-3,1e-2", "size": "32", "iterations": "20", "seed": "0"},
                  jobs=1, progress=False)
    assert len(rerun.records) == 8 and len(rerun.computed) == 8 - done


def test_the_scheduler_going_away_is_one_line_and_a_rerun_resumes(real_weights, folder, tmp_path):
    """A real `dask scheduler` and `dask worker` on 127.0.0.1; the scheduler is killed once the
    first cell is kept."""
    port = 8790 + os.getpid() % 100
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "dask"]
    scheduler = subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port", str(port),
                                         "--no-dashboard"], stderr=subprocess.DEVNULL)
    worker = subprocess.Popen(dask + ["worker", address, "--nworkers", "1", "--nthreads", "1",
                                      "--no-dashboard"], stderr=subprocess.DEVNULL)
    out = tmp_path / "out"
    try:
        sweeping = subprocess.Popen(
            [sys.executable, "-m", "gatys", "sweep", "--content", str(folder / "photos" / "a.png"),
             "--style", str(folder / "paintings"), "-o", str(out), "--ratio", "1e-3,1e-2,1e-1",
             "--size", "32", "--iterations", "30", "--seed", "0", "--scheduler", address,
             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not list(out.glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        scheduler.kill()
        _, stderr = sweeping.communicate(timeout=120)
    finally:
        for p in (scheduler, worker):
            p.kill()
            p.wait()
    assert sweeping.returncode == 1, stderr
    assert stderr.count("\n") == 1 and "lost the Dask scheduler" in stderr, stderr
    done = len(list(out.glob("*.json")))
    assert 1 <= done < 6
    rerun = sweep([folder / "photos" / "a.png"], [folder / "paintings"], out,
                  grid={"ratio": "1e-3,1e-2,1e-1", "size": "32", "iterations": "30",
                        "seed": "0"}, jobs=1, progress=False)
    assert len(rerun.records) == 6 and len(rerun.computed) == 6 - done


def test_a_transfer_cell_is_computed_again_when_the_defaults_it_relies_on_change(monkeypatch):
    """A sweep's cell names only what it sets; the transfer's defaults per pooling (its start,
    ratio and stages) are part of its identity, so cells kept from a version with other
    defaults are not reused."""
    from gatys.batch import cells
    from gatys.run.options import POOL_DEFAULTS

    cell = cells.Cell("tubingen__starry", "transfer", {"content": "a.png", "style": "b.png",
                                                       "size": 64})
    hashes = {"a.png": "0", "b.png": "1"}
    before = cells.identity(cell, hashes)
    assert before["defaults"] == POOL_DEFAULTS
    monkeypatch.setattr(cells, "POOL_DEFAULTS", {**POOL_DEFAULTS, "max": {
        **POOL_DEFAULTS["max"], "ratio": 7e-3, "init": "noise", "scales": 1}})
    assert cells.identity(cell, hashes) != before
    reconstruction = cells.Cell("r", "reconstruct_style", {"image": "a.png"})
    assert "defaults" not in cells.identity(reconstruction, hashes)
