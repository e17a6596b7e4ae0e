"""``gatys studio``'s server without a browser: the guard (token, Host, Origin), uploads and
painted masks checked by the command line's rules, runs queued one at a time, stopped with
their image kept, the Inside view's matrices, the same picture as the command line it shows,
and the signals and exit codes of the server process."""
from __future__ import annotations

import base64
import io
import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the studio's tests need pip install 'gatys[studio]'")
TestClient = pytest.importorskip("starlette.testclient",
                                 reason="Starlette's test client needs httpx2").TestClient

from support.studio import start_studio  # noqa: E402

from gatys import cli  # noqa: E402
from gatys.studio.app import create_app  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"
TOKEN = "test-token"
TINY = {"size": "32", "iterations": "8", "seed": "0"}


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def folder(tmp_path, real_weights):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    Image.fromarray((rng.random((48, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "art.png")
    return tmp_path


@pytest.fixture
def client(folder):
    app = create_app(folder, TOKEN, {"testserver"}, max_upload_mb=0.05)
    with TestClient(app, headers={"X-Gatys-Token": TOKEN}) as c:
        yield c


def wait_over(client, run_id, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        run = client.get("/api/runs").json()["runs"][run_id - 1]
        if run["state"] in ("done", "stopped", "failed", "cancelled"):
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end")


def start(client, **options):
    response = client.post("/api/runs", json={"content": "photo.png", "styles": ["art.png"],
                                              "options": {**TINY, **options}})
    assert response.status_code == 200, response.text
    return response.json()


def one_line_error(response, status):
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert "\n" not in message and "Traceback" not in message
    return message


# --- the guard ------------------------------------------------------------------------------------

def test_a_request_without_the_token_or_with_another_is_refused(client):
    for headers in ({"X-Gatys-Token": ""}, {"X-Gatys-Token": "guess"}):
        response = client.get("/api/pictures", headers=headers)
        assert "its token" in one_line_error(response, 403)
    assert client.get("/", headers={"X-Gatys-Token": ""}).status_code == 403
    assert client.get(f"/api/pictures?token={TOKEN}", headers={"X-Gatys-Token": ""}) \
        .status_code == 200
    # nothing is started by a refused request
    refused = client.post("/api/runs", headers={"X-Gatys-Token": "guess"},
                          json={"content": "photo.png", "styles": ["art.png"], "options": TINY})
    assert refused.status_code == 403 and client.get("/api/runs").json()["runs"] == []


def test_a_foreign_origin_and_a_foreign_host_are_refused_even_with_the_token(client):
    response = client.post("/api/runs", headers={"Origin": "http://evil.example"},
                           json={"content": "photo.png", "styles": ["art.png"], "options": TINY})
    assert "another site" in one_line_error(response, 403)
    # a page of evil.example whose name was rebound to 127.0.0.1 sends its own name as Host
    response = client.get("/api/pictures", headers={"Host": "evil.example:8765"})
    assert "answers to testserver" in one_line_error(response, 403)
    assert client.get("/api/pictures", headers={"Origin": "http://testserver"}).status_code == 200
    assert client.get("/api/runs").json()["runs"] == []


def test_the_page_names_its_token_and_loads_only_from_itself(client):
    page = client.get("/")
    assert page.status_code == 200 and f'data-token="{TOKEN}"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/studio.js").status_code == 200
    assert client.get("/static/..%2Fapp.py").status_code == 404


# --- uploads -------------------------------------------------------------------------------

@pytest.mark.parametrize("given, stem", [("../../etc/my photo.png", "upload-my-photo-"),
                                         ("<img src=x onerror=alert(1)>.png",
                                          "upload-img-src-x-onerror-alert-1-"),
                                         (".hidden.jpg", "upload-hidden-")])
def test_an_upload_is_kept_under_a_name_the_server_chooses(client, folder, given, stem):
    data = _png(np.full((20, 30, 3), 90, np.uint8))
    response = client.post("/api/upload", params={"name": given}, content=data)
    assert response.status_code == 200, response.text
    name = response.json()["name"]
    assert name.startswith(stem) and name.endswith(".png")  # the format's, not the name's
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", name)
    assert (folder / name).read_bytes() == data
    assert name in client.get("/api/pictures").json()["pictures"]


@pytest.mark.parametrize("what, data, status, says", [
    ("oversized", b"\x89PNG" + bytes(60_000), 413, "more than the 0.05 MB"),
    ("not a picture", b"hello, world" * 10, 400, "not an image"),
    ("truncated", _png(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))[:3000],
     400, "damaged or truncated"),
    ("a GIF", (lambda b: (Image.new("RGB", (8, 8)).save(b, format="GIF"), b.getvalue())[1])(
        io.BytesIO()), 400, "upload a PNG, JPEG"),
    ("empty", b"", 400, "is empty"),
])
def test_a_bad_upload_gets_one_line_and_leaves_nothing_behind(client, folder, what, data, status,
                                                              says):
    before = sorted(p.name for p in folder.iterdir())
    response = client.post("/api/upload?name=x.png", content=data)
    assert says in one_line_error(response, status), what
    assert sorted(p.name for p in folder.iterdir()) == before


def test_a_picture_over_the_pixel_cap_is_refused_from_its_header(client, folder):
    buffer = io.BytesIO()
    Image.new("L", (12000, 12000)).save(buffer, format="PNG")  # 144 Mpx declared, small file
    app = create_app(folder, TOKEN, {"testserver"}, max_upload_mb=5)
    with TestClient(app, headers={"X-Gatys-Token": TOKEN}) as big:
        response = big.post("/api/upload?name=huge.png", content=buffer.getvalue())
    assert "downscale it first" in one_line_error(response, 400)
    assert not any(p.name.startswith("upload-") for p in folder.iterdir())


def test_a_painted_mask_is_saved_as_the_greyscale_file_region_takes(client, folder):
    rgba = np.zeros((40, 48, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[10:20, 12:30, :3] = 255
    name = client.post("/api/masks?name=region-1", content=_png(rgba)).json()["name"]
    with Image.open(folder / name) as im:
        assert im.mode == "L"
        grey = np.asarray(im)
    assert (grey[10:20, 12:30] == 255).all() and grey.sum() == 255 * 10 * 18
    rgba[0, 0] = (255, 0, 0, 255)
    assert "colour" in one_line_error(client.post("/api/masks", content=_png(rgba)), 400)
    rgba[0, 0] = (0, 0, 0, 0)
    assert "transparent" in one_line_error(client.post("/api/masks", content=_png(rgba)), 400)


# --- runs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("body, says", [
    ({"content": "photo.png", "styles": ["art.png"], "options": {"size": "abc"}},
     "--size: 'abc' is not an integer"),
    ({"content": "photo.png", "styles": ["art.png"], "options": {"ratio": "1e-3",
                                                                 "content_weight": "1"}},
     "either ratio or content_weight"),
    ({"content": "../photo.png", "styles": ["art.png"]}, "not the name of a picture"),
    ({"content": "missing.png", "styles": ["art.png"]}, "no picture named"),
    ({"content": "photo.png", "styles": []}, "no style image given"),
    ({"content": "photo.png", "styles": ["art.png"], "options": {"bogus": "1"}},
     "unknown option"),
    ("not json", "as JSON"),
])
def test_a_bad_run_is_refused_at_once_in_one_line(client, body, says):
    response = client.post("/api/runs", content=body if isinstance(body, str)
                           else json.dumps(body))
    assert says in one_line_error(response, 400)
    assert client.get("/api/runs").json()["runs"] == []


def test_two_runs_queue_instead_of_running_at_once(client):
    seen = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen.append([r["state"] for r in client.get("/api/runs").json()["runs"]])
            time.sleep(0.01)

    first, second = start(client, iterations="30"), start(client, iterations="5")
    assert second["state"] == "queued"
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        wait_over(client, first["id"])
        wait_over(client, second["id"])
    finally:
        stop.set()
        watcher.join()
    assert all(states.count("running") <= 1 for states in seen)
    assert any(states[:2] == ["running", "queued"] for states in seen)
    runs = client.get("/api/runs").json()["runs"]
    assert [r["state"] for r in runs] == ["done", "done"]
    assert [r["iterations"] for r in runs] == [30, 5]


def test_a_stopped_run_keeps_its_picture_with_the_command_lines_text_chunks(client, folder):
    run = start(client, iterations="2000")
    end = time.monotonic() + 60
    while client.get("/api/runs").json()["runs"][0]["iterations"] < 3:
        assert time.monotonic() < end
        time.sleep(0.02)
    client.post(f"/api/runs/{run['id']}/stop")
    over = wait_over(client, run["id"])
    assert over["state"] == "stopped" and over["message"].startswith("stopped after")
    with Image.open(folder / over["name"]) as im:
        text = dict(im.text)
    assert text["gatys:command"] == "transfer" and text["gatys:size"] == "32"
    assert 3 <= int(text["gatys:iterations_done"]) < 2000
    record = json.loads((folder / over["name"]).with_suffix(".json").read_text())
    assert record["state"] == "stopped" and record["request"]["options"]["iterations"] == "2000"
    history = client.get("/api/pictures").json()["history"]
    assert [h["name"] for h in history] == [over["name"]] and history[0]["record"] == record


def test_a_queued_run_stopped_is_cancelled_without_running(client, folder):
    first, second = start(client, iterations="2000"), start(client)
    client.post(f"/api/runs/{second['id']}/stop")
    client.post(f"/api/runs/{first['id']}/stop")
    assert wait_over(client, second["id"])["state"] == "cancelled"
    assert wait_over(client, first["id"])["state"] == "stopped"
    assert not (folder / second["name"]).exists()


def test_continue_starts_from_the_picture_reached_at_full_size(client, folder):
    first = wait_over(client, start(client)["id"])
    second = start(client, init=first["name"], scales="1")
    assert f"--init {folder / first['name']}" in second["command"]
    over = wait_over(client, second["id"])
    assert over["state"] == "done" and over["request"]["options"]["init"] == first["name"]
    with Image.open(folder / over["name"]) as im:
        assert im.text["gatys:init"] == str(folder / first["name"])
        assert im.text["gatys:scales"] == "32"  # one stage, at the size


def test_the_inside_view_shows_the_grams_the_objective_compares(client):
    run = start(client)
    wait_over(client, run["id"])
    d = client.get(f"/api/runs/{run['id']}/inside?layer=conv2_1").json()
    assert d["layer"] == "conv2_1" and d["N"] == 128 and d["E"] > 0
    for key in ("A", "G", "D"):
        png = base64.b64decode(d[key].split(",", 1)[1])
        with Image.open(io.BytesIO(png)) as im:
            assert im.size == (128, 128)
    assert len(d["content"]["maps"]) == 4
    response = client.get(f"/api/runs/{run['id']}/inside?layer=conv4_2")
    assert "not a style layer" in one_line_error(response, 400)
    # the page's choice of layers is the run's own
    other = wait_over(client, start(client, style_layers="conv2_1,conv4_1")["id"])
    assert other["style_layers"] == ["conv2_1", "conv4_1"]
    assert client.get(f"/api/runs/{other['id']}/inside?layer=conv4_1").json()["N"] == 512


def test_a_studio_run_and_the_command_it_shows_write_the_same_picture(client, folder):
    run = start(client, iterations="12", ratio="1e-3")
    over = wait_over(client, run["id"])
    assert over["state"] == "done", over["message"]
    words = shlex.split(over["command"])
    assert words[:2] == ["gatys", "transfer"]
    done = subprocess.run([sys.executable, "-m", "gatys", *words[1:], "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    cli_png = Path(words[words.index("-o") + 1])
    studio, command_line = (np.asarray(Image.open(p).convert("RGB"), dtype=np.int16)
                            for p in (folder / over["name"], cli_png))
    assert studio.shape == command_line.shape
    with Image.open(folder / over["name"]) as a, Image.open(cli_png) as b:
        # on the CPU the same computation to the bit; elsewhere to float32 rounding
        most = 0 if a.text["gatys:device"] == "cpu" else 1
        assert np.abs(studio - command_line).max() <= most
        same = {k for k in a.text if k.startswith("gatys:") and k not in ("gatys:seed",)}
        assert {k: a.text[k] for k in same if "loss" not in k} == \
            {k: b.text[k] for k in same if "loss" not in k}


# --- the server process -------------------------------------------------------------------------

@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_run_keeps_its_picture_and_exits_with_the_usual_code(folder, signum,
                                                                               code):
    studio = start_studio(folder)
    try:
        studio.call("/api/runs", {"content": "photo.png", "styles": ["art.png"],
                                  "options": {**TINY, "iterations": "5000"}})
        studio.call("/api/runs", {"content": "photo.png", "styles": ["art.png"],
                                  "options": TINY})
        studio.wait_for(lambda runs: runs[0]["iterations"] >= 3, "three iterations")
        studio.process.send_signal(signum)
        rc, err = studio.stop(signalled=True)
    finally:
        if studio.process.poll() is None:
            studio.process.kill()
    assert rc == code, err
    assert "run-001.png: stopped" in err and "Traceback" not in err
    with Image.open(folder / "run-001.png") as im:
        assert int(im.text["gatys:iterations_done"]) >= 3
    assert not (folder / "run-002.png").exists()  # the queued one never started
    assert not list(folder.glob(".gatys-*"))


def test_closing_the_page_leaves_the_run_going(folder):
    studio = start_studio(folder)
    try:
        studio.call("/api/runs", {"content": "photo.png", "styles": ["art.png"],
                                  "options": {**TINY, "iterations": "40"}})
        request = urllib.request.Request(f"{studio.base}/api/events",
                                         headers={"X-Gatys-Token": studio.token})
        with urllib.request.urlopen(request, timeout=30) as events:  # the page, then closed
            assert events.readline().startswith(b"retry:")
        run = studio.wait_for(lambda runs: runs[0]["state"] not in ("queued", "running")
                              and runs[0], "the run to end")
        assert run["state"] == "done" and run["iterations"] == 40
    finally:
        studio.stop()


def test_another_address_than_this_machines_is_warned_about(folder):
    studio = start_studio(folder, "--host", "0.0.0.0")
    _, err = studio.stop()
    assert "warning: listening on 0.0.0.0" in err


def test_a_port_in_use_and_a_missing_extra_are_one_line_errors(folder, capsys, monkeypatch):
    studio = start_studio(folder)
    try:
        port = studio.base.rsplit(":", 1)[1]
        assert cli.main(["studio", "--folder", str(folder), "--port", port]) == 2
        err = capsys.readouterr().err
        assert f"port {port} is in use" in err and err.count("\n") == 1
    finally:
        studio.stop()
    with pytest.raises(SystemExit) as refused:
        cli.main(["studio", "--folder", str(folder), "--port", "70000"])
    assert refused.value.code == 2 and "0 to 65535" in capsys.readouterr().err
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert cli.main(["studio", "--folder", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "pip install 'gatys[studio]'" in err and err.count("\n") == 1
