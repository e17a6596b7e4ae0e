"""The optimisation and the Python API, at tiny sizes."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

import gatys
import gatys.io.images
from gatys.errors import InputError, OutputError
from gatys.kernels import get_backend
from gatys.model.gradcheck import random_vgg
from gatys.model.losses import LossWeights
from gatys.model.network import Network
from gatys.model.objective import Objective, content_targets, style_targets
from gatys.model.optimize import run_lbfgs

SIZE = 40


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """A small synthetic photo (smooth shapes) and painting (stripes), written as files."""
    d = tmp_path_factory.mktemp("pictures")
    yy, xx = np.mgrid[0:48, 0:64] / 64.0
    photo = np.stack([xx, yy, 0.5 + 0.4 * np.sin(6 * xx) * np.cos(4 * yy)], axis=2)
    painting = np.stack([0.5 + 0.5 * np.sin(20 * (xx + yy)), 0.3 + 0 * xx, 0.5 + 0.5 * np.cos(9 * xx)], axis=2)
    paths = {}
    for name, a in (("photo", photo), ("painting", painting)):
        paths[name] = d / f"{name}.png"
        Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8)).save(paths[name])
    return paths


def _random_objective(rng, side):
    """The paper's objective on a random VGG and random pictures of ``side``^2."""
    net = Network(random_vgg(seed=3), get_backend("cpu"))
    content, style = rng.random((3, side, side), np.float32), rng.random((3, side, side), np.float32)
    layers = {n: 0.2 for n in gatys.DEFAULT_STYLE_LAYERS}
    return Objective(net, LossWeights(1e-2, 1.0, {"conv4_2": 1.0}, layers),
                     content_targets(net, content, ["conv4_2"]), style_targets(net, style, list(layers)))


def test_lbfgs_lowers_the_loss_and_keeps_pixels_in_range():
    rng = np.random.default_rng(0)
    obj = _random_objective(rng, 24)
    x0 = rng.random((3, 24, 24), np.float32)
    start = obj.evaluate(x0).total
    out = run_lbfgs(obj, x0, iterations=30, history=10)
    totals = [s.total for s in out.history]
    assert len(totals) == 30
    assert totals[-1] < 0.1 * start
    assert all(b <= a * (1 + 1e-6) for a, b in zip(totals, totals[1:]))  # never goes up
    assert out.x.min() >= 0 and out.x.max() <= 1


@pytest.mark.parametrize("side", [24, 23])
def test_the_fixed_variables_past_the_pixels_change_no_iterate(monkeypatch, side):
    """run_lbfgs hands L-BFGS-B the pixels and, after them, variables fixed at zero that set its
    correction vectors apart in memory: the same iterates, bit for bit, as without them."""
    from gatys.model import optimize

    n = 3 * side * side
    given = []
    real_lbfgsb = optimize.fmin_l_bfgs_b

    def capturing(fun, x0, **kwargs):
        given.append((x0.copy(), kwargs["bounds"]))
        return real_lbfgsb(fun, x0, **kwargs)

    monkeypatch.setattr(optimize, "fmin_l_bfgs_b", capturing)
    runs = []
    for padding in (optimize.lbfgsb_padding, lambda n: 0):
        monkeypatch.setattr(optimize, "lbfgsb_padding", padding)
        rng = np.random.default_rng(4)
        obj = _random_objective(rng, side)
        runs.append(run_lbfgs(obj, rng.random((3, side, side), np.float32), iterations=15,
                              history=5))
    (z0, bounds), (plain, _) = given
    pad = len(z0) - n
    assert pad > 0 and (n + pad) % 512 == optimize.LBFGSB_COLUMN_OFFSET and len(plain) == n
    assert bounds[n:] == [(0.0, 0.0)] * pad and not z0[n:].any()
    assert np.array_equal(z0[:n], plain)
    padded, unpadded = runs
    assert padded.x.shape == (3, side, side) and len(padded.history) == 15
    assert np.array_equal(padded.x, unpadded.x)
    assert [s.total for s in padded.history] == [s.total for s in unpadded.history]


def test_the_padding_puts_lbfgsbs_vectors_half_a_page_past_a_whole_one():
    from gatys.model.optimize import lbfgsb_padding

    for n in (1, 255, 256, 257, 511, 512, 3 * 512 * 384, 3 * 512 * 512, 3 * 98 * 131):
        assert 0 <= lbfgsb_padding(n) < 512 and (n + lbfgsb_padding(n)) * 8 % 4096 == 2048


def test_evaluations_are_scipys_count_and_each_step_reuses_the_last_one(monkeypatch):
    """The callback takes the accepted iterate's loss from the evaluation L-BFGS-B just made,
    so a run evaluates the objective exactly as often as scipy says it did (nfev)."""
    from gatys.model import optimize

    rng = np.random.default_rng(1)
    obj = _random_objective(rng, 20)
    scipy_says = []

    def counted(*args, **kwargs):
        result = real_lbfgsb(*args, **kwargs)
        scipy_says.append(result[2]["funcalls"])
        return result

    real_lbfgsb = optimize.fmin_l_bfgs_b
    monkeypatch.setattr(optimize, "fmin_l_bfgs_b", counted)
    out = run_lbfgs(obj, rng.random((3, 20, 20), np.float32), iterations=12, history=5)
    assert len(out.history) == 12 and scipy_says[0] > 12  # line searches evaluate more than once
    assert out.evaluations == scipy_says[0]
    assert out.history[-1].evaluations <= out.evaluations
    assert [s.evaluations for s in out.history] == sorted({s.evaluations for s in out.history})


def test_transfer_runs_and_is_reproducible(real_weights, pictures, tmp_path):
    steps = []
    a = gatys.transfer(pictures["photo"], pictures["painting"], tmp_path / "a.png", size=SIZE,
                       iterations=4, seed=3, init="noise",
                       callback=lambda s, x: steps.append((s.iteration, x.shape)))
    b = gatys.transfer(pictures["photo"], pictures["painting"], size=SIZE, iterations=4, seed=3,
                       init="noise")
    assert a.image.shape == (30, 40, 3) and a.image.dtype == np.float32
    np.testing.assert_array_equal(a.image, b.image)
    assert [h["iteration"] for h in a.history] == [1, 2, 3, 4]
    assert {"content", "style", "total", "style:conv5_1", "content:conv4_2"} <= set(a.history[0])
    assert steps == [(i, (30, 40, 3)) for i in (1, 2, 3, 4)]
    assert 0 < a.evaluation_seconds < a.seconds  # the rest is L-BFGS-B's and the writing
    counts = [h["evaluations"] for h in a.history]  # so far, line searches' included
    assert counts[0] >= 1 and counts == sorted(counts) and counts[-1] >= 4
    assert all(0 < h["evaluation_seconds"] < h["seconds"] for h in a.history)
    assert a.history[-1]["evaluation_seconds"] <= a.evaluation_seconds
    with Image.open(a.output) as im:
        assert im.text["gatys:seed"] == "3" and im.text["gatys:ratio"] == "0.0001"
        assert im.text["gatys:pool"] == "max" and im.text["gatys:init"] == "noise"
        assert im.text["gatys:noise_std"] == str(1 / 255)
        assert im.text["gatys:iterations_done"] == "4"


def test_defaults_follow_the_pooling(real_weights, pictures, tmp_path):
    """--pool avg alone is the paper's setting: white noise, one stage, 1e-3; the default, max
    pooling, starts from the photo, at 1e-4, in two stages where the pictures allow
    (docs/look.md)."""
    kwargs = dict(iterations=1, seed=0)
    paper = gatys.transfer(pictures["photo"], pictures["painting"], pool="avg", size=64,
                           **kwargs).parameters
    assert (paper["ratio"], paper["init"], paper["scales"]) == (1e-3, "noise", "64")
    look = gatys.transfer(pictures["photo"], pictures["painting"], size=64, **kwargs).parameters
    assert (look["ratio"], look["init"], look["scales"]) == (1e-4, "content", "32,64")
    assert gatys.run.api.MAX_POOL_RATIO == 1e-4
    # the photo is 48x64: at 40 px its first stage, 20x15, would not reach conv5_1: one stage
    assert gatys.transfer(pictures["photo"], pictures["painting"], size=40,
                          **kwargs).parameters["scales"] == "40"
    # given, the stages are kept, and too small a first stage is an error that says so
    with pytest.raises(gatys.InputError, match="too small for layer conv5_1"):
        gatys.transfer(pictures["photo"], pictures["painting"], size=40, scales=2, **kwargs)
    assert gatys.transfer(pictures["photo"], pictures["painting"], size=64, scales=1,
                          init="noise", **kwargs).parameters["scales"] == "64"


def test_noise_start_is_small_gaussian_noise_around_the_photos_mean(pictures):
    from gatys.run.synthesis import initial_image
    photo = gatys.io.images.read_image(pictures["photo"], "content")
    x = initial_image("noise", (200, 300), 0, {"content": photo}, noise_std=0.02)
    np.testing.assert_allclose(x.mean(axis=(1, 2)), photo.mean(axis=(1, 2)), atol=1e-3)
    np.testing.assert_allclose(x.std(axis=(1, 2)), 0.02, rtol=0.02)
    grey = initial_image("noise", (20, 30), 0, {"content": photo}, noise_std=0, noise_mean=0.25)
    assert (grey == 0.25).all()
    uniform = initial_image("uniform", (200, 300), 0, {"content": photo})
    assert uniform.min() < 0.01 and uniform.max() > 0.99


def test_ratio_changes_the_balance(real_weights, pictures):
    low = gatys.transfer(pictures["photo"], pictures["painting"], size=SIZE, iterations=15, seed=0, ratio=1e-5)
    high = gatys.transfer(pictures["photo"], pictures["painting"], size=SIZE, iterations=15, seed=0, ratio=1e1)
    assert high.history[-1]["content"] < low.history[-1]["content"]
    assert high.history[-1]["style"] > low.history[-1]["style"]


def test_explicit_weights_and_init_choices(real_weights, pictures):
    r = gatys.transfer(pictures["photo"], pictures["painting"], size=SIZE, iterations=2,
                       content_weight=1.0, style_weight=0.0, init="content", seed=0)
    assert r.parameters["alpha"] == 1.0 and r.parameters["beta"] == 0.0
    # Started from the photo with only the content term: already optimal, so L-BFGS stops,
    # by convergence or, where the features' last bits leave a gradient of rounding noise, by a
    # line search that finds nothing lower (as with OpenBLAS's Haswell kernels).
    photo = gatys.io.images.load_image(pictures["photo"], size=SIZE).transpose(1, 2, 0)
    np.testing.assert_allclose(r.image, photo, atol=1e-6)
    assert len(r.history) <= 1 and ("CONVERGENCE" in r.message or "ABNORMAL" in r.message)
    # The other starts, checked where the run begins: the painting stretched to the photo's
    # shape, for "style" and for the painting's file alike.
    from gatys.run.synthesis import initial_image

    painting = gatys.io.images.load_image(pictures["painting"], size=SIZE)
    shape = photo.shape[:2]
    stretched = gatys.io.images.resize(painting, shape=shape)
    np.testing.assert_array_equal(initial_image("style", shape, 0, {"style": painting}),
                                  stretched)
    np.testing.assert_allclose(initial_image(str(pictures["painting"]), shape, 0, {}), stretched,
                               atol=1e-6)
    noise = initial_image("uniform", shape, 5, {})
    assert noise.shape == (3, *shape) and 0.45 < noise.mean() < 0.55
    np.testing.assert_array_equal(noise, initial_image("uniform", shape, 5, {}))
    small = initial_image("noise", shape, 5, {"style": painting})
    np.testing.assert_array_equal(small, initial_image("noise", shape, 5, {"style": painting}))
    assert abs(small.mean() - painting.mean()) < 0.01


def test_save_every_and_interrupt(real_weights, pictures, tmp_path):
    out = tmp_path / "out.png"

    def stop_at_3(step, x):
        if step.iteration == 3:
            raise KeyboardInterrupt

    with pytest.raises(gatys.Interrupted) as caught:
        gatys.transfer(pictures["photo"], pictures["painting"], out, size=SIZE, iterations=50,
                       save_every=2, callback=stop_at_3)
    result = caught.value.result
    assert result.interrupted and len(result.history) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "out_00002.png"]
    with Image.open(out) as im:
        assert im.text["gatys:iterations_done"] == "3"


def test_reconstructions(real_weights, pictures):
    c = gatys.reconstruct_content(pictures["photo"], "conv2_1", size=SIZE, iterations=20, seed=0)
    assert c.history[-1]["content"] < 0.05 * c.history[0]["content"] or c.history[-1]["content"] < 1e-2
    s = gatys.reconstruct_style(pictures["painting"], "conv1_1,conv2_1", size=SIZE, iterations=5, seed=0)
    assert s.history[-1]["style"] < s.history[0]["style"]
    assert set(s.history[0]) >= {"style:conv1_1", "style:conv2_1"}


def test_array_inputs_give_what_the_same_files_give(real_weights, tmp_path):
    rng = np.random.default_rng(0)
    photo = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    painting = (rng.random((20, 36, 3)) * 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(painting).save(tmp_path / "a.png")
    arrays = gatys.transfer(photo, painting, size=32, iterations=3, seed=1)
    files = gatys.transfer(tmp_path / "p.png", tmp_path / "a.png", size=32, iterations=3, seed=1)
    assert arrays.image.shape == (32, 32, 3)
    np.testing.assert_array_equal(arrays.image, files.image)
    as_floats = gatys.transfer(photo / 255.0, Image.fromarray(painting), size=32, iterations=3,
                               seed=1)
    np.testing.assert_allclose(as_floats.image, files.image, atol=1e-5)


@pytest.mark.parametrize("kwargs,message", [
    ({"ratio": -1}, "ratio must be a positive"),
    ({"ratio": 1e-3, "content_weight": 1}, "either ratio or"),
    ({"content_weight": 0, "style_weight": 0}, "both 0"),
    ({"content_layer": "conv9_9"}, "unknown layer 'conv9_9'"),
    ({"style_layers": "conv1_1,conv1_1"}, "twice"),
    ({"style_layers": ""}, "empty"),
    ({"size": 8}, "size must be an integer >= 16"),
    ({"iterations": 0}, "iterations must be"),
    ({"pool": "median"}, "unknown pool"),
    ({"device": "tpu"}, "unknown device"),
    ({"init": "zeros"}, "unknown init 'zeros'"),
    ({"noise_std": -0.1}, "noise_std must be a non-negative"),
    ({"noise_mean": 1.5}, "noise_mean must be 'image' or a grey level in"),
    ({"noise_mean": "photo"}, "noise_mean must be 'image' or a grey level in"),
    ({"save_every": 5}, "needs an output path"),
    ({"content_scale": "huge"}, "unknown content_scale"),
])
def test_bad_arguments(pictures, kwargs, message):
    with pytest.raises(InputError, match=message):
        gatys.transfer(pictures["photo"], pictures["painting"], **{"size": SIZE, **kwargs})


def test_bad_output_is_refused_before_any_work(pictures, tmp_path):
    with pytest.raises(OutputError, match="unknown image extension"):
        gatys.transfer(pictures["photo"], pictures["painting"], tmp_path / "out.txt", size=SIZE)


def test_memory_estimate_refuses_what_cannot_fit(pictures, monkeypatch):
    from gatys.model.vgg import CHANNELS
    from gatys.run import memory

    small, large = (memory.estimate_bytes((s, s), CHANNELS, "conv5_1", 20) for s in (256, 1024))
    assert 0 < small < large
    monkeypatch.setattr(memory, "available_bytes", lambda: int(1.5 * small))
    with pytest.raises(InputError, match=r"needs about .* GiB .* use --size (\d+) or less") as caught:
        gatys.transfer(pictures["photo"], pictures["painting"], size=1024, iterations=1)
    fits = int(caught.value.args[0].split("--size ")[1].split()[0])
    assert 256 <= fits < 1024
    h, w = fits * 3 // 4, fits  # the photo is 4:3
    assert memory.estimate_bytes((h, w), CHANNELS, "conv5_1", 20) <= 0.9 * 1.5 * small


def _threads_of_maps(monkeypatch) -> list[int]:
    """The thread counts of the Workers every map runs on, from now on."""
    from gatys.kernels.workers import Workers

    seen: list[int] = []
    run = Workers.map
    monkeypatch.setattr(Workers, "map", lambda self, fn, parts: (
        seen.append(self._thread_count), run(self, fn, parts))[1])
    return seen


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_sets_the_cpu_engine_s_threads_and_is_recorded(real_weights, pictures, tmp_path,
                                                                monkeypatch, threads):
    from gatys.kernels.workers import cpus

    if threads > cpus():
        pytest.skip(f"{threads} threads asked on {cpus()} CPUs")
    seen = _threads_of_maps(monkeypatch)
    out = tmp_path / "t.png"
    r = gatys.transfer(pictures["photo"], pictures["painting"], out, size=SIZE, iterations=2,
                       seed=3, device="cpu", threads=threads)
    assert len(seen) > 50 and set(seen) == {threads}
    assert r.parameters["threads"] == threads
    assert Image.open(out).text["gatys:threads"] == str(threads)
    unset = gatys.transfer(pictures["photo"], pictures["painting"], size=SIZE, iterations=1,
                           seed=3, device="cpu")
    assert "threads" not in unset.parameters  # records made before the option stay the same


def test_threads_counts_in_the_memory_estimate(pictures, monkeypatch):
    """The estimate holds a part's scratch per thread: a size that fits on one thread can be
    refused on eight, where the engine's default would be checked otherwise."""
    from gatys.model.vgg import CHANNELS
    from gatys.run import fitting, memory

    one, eight = (memory.estimate_bytes((768, 1024), CHANNELS, "conv5_1", 20, threads=t)
                  for t in (1, 8))
    assert one < eight
    monkeypatch.setattr(memory, "available_bytes", lambda: int((one + eight) / 2 / 0.9))
    fitting.check_shape((768, 1024), ["conv5_1"], 20, threads=1)
    with pytest.raises(InputError, match=r"needs about .* GiB .* use --size \d+ or less"):
        fitting.check_shape((768, 1024), ["conv5_1"], 20, threads=8)


@pytest.mark.parametrize("threads, device, says", [
    (999, "cpu", "--threads 999: this process may run on"),
    (1, "cuda", "--threads sets the CPU engine's threads, and this run is on cuda: use it with "
                "--device cpu")])
def test_threads_beyond_the_cpus_or_off_the_cpu_are_refused(pictures, tmp_path, capsys, threads,
                                                            device, says):
    from gatys import cli

    with pytest.raises(InputError, match=re.escape(says)):
        gatys.transfer(pictures["photo"], pictures["painting"], tmp_path / "o.png", size=SIZE,
                       device=device, threads=threads)
    rc = cli.main(["transfer", str(pictures["photo"]), str(pictures["painting"]), "-o",
                   str(tmp_path / "o.png"), "--device", device, "--threads", str(threads)])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_USAGE and says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


@pytest.fixture(scope="module")
def second_painting(tmp_path_factory):
    yy, xx = np.mgrid[0:40, 0:40] / 40.0
    a = np.stack([0.5 + 0.5 * np.cos(25 * xx * yy), 0.8 + 0 * xx, 0.2 + 0.6 * yy], axis=2)
    path = tmp_path_factory.mktemp("second") / "second.png"
    Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def test_blend_weights_select_and_mix_paintings(real_weights, pictures, second_painting):
    kwargs = dict(size=SIZE, iterations=3, seed=2)
    single = gatys.transfer(pictures["photo"], pictures["painting"], **kwargs)
    only_first = gatys.transfer(pictures["photo"], [pictures["painting"], second_painting],
                                style_blend=[1, 0], **kwargs)
    np.testing.assert_array_equal(single.image, only_first.image)
    mixed = gatys.transfer(pictures["photo"], [pictures["painting"], second_painting],
                           style_blend="3,7", **kwargs)
    assert mixed.parameters["style_blend"] == "0.3,0.7"
    assert not np.array_equal(mixed.image, single.image)


def test_layer_weights_and_style_scale(real_weights, pictures):
    kwargs = dict(size=SIZE, iterations=2, seed=2)
    base = gatys.transfer(pictures["photo"], pictures["painting"], **kwargs)
    same = gatys.transfer(pictures["photo"], pictures["painting"], style_layer_weights=[0.2] * 5,
                          content_layer_weights="1", **kwargs)
    np.testing.assert_array_equal(base.image, same.image)  # the defaults, spelled out
    heavier = gatys.transfer(pictures["photo"], pictures["painting"],
                             style_layer_weights=[1, 0, 0, 0, 0], **kwargs)
    # All the weight on conv1_1: L_style is exactly E_conv1_1 of the same start (w_l = 1).
    first = heavier.history[0]
    assert first["style"] == pytest.approx(first["style:conv1_1"], rel=1e-6)
    assert base.history[0]["style"] == pytest.approx(
        0.2 * sum(base.history[0][f"style:{n}"] for n in gatys.DEFAULT_STYLE_LAYERS), rel=1e-6)
    scaled = gatys.transfer(pictures["photo"], pictures["painting"], style_scale=2, **kwargs)
    assert scaled.parameters["style_scale"] == 2.0
    assert not np.array_equal(scaled.image, base.image)


def test_total_variation_smooths(real_weights, pictures):
    def tv(img):
        return float(np.abs(np.diff(img, axis=0)).mean() + np.abs(np.diff(img, axis=1)).mean())

    # From rough uniform noise, which the term must smooth away.
    kwargs = dict(size=SIZE, iterations=15, seed=4, init="uniform", pool="avg")
    rough = gatys.transfer(pictures["photo"], pictures["painting"], **kwargs)
    smooth = gatys.transfer(pictures["photo"], pictures["painting"], tv_weight=1.0, **kwargs)
    assert "tv" in smooth.history[-1] and "tv" not in rough.history[-1]
    assert tv(smooth.image) < 0.8 * tv(rough.image)


@pytest.mark.parametrize("kwargs,message", [
    ({"style_blend": [1, 2, 3]}, "style_blend has 3 values but needs 1"),
    ({"style_blend": [0]}, "all zeros"),
    ({"style_blend": [-1]}, "style_blend must be a non-negative"),
    ({"style_scale": -2}, "style_scale must be a positive"),
    ({"style_scale": 0.01}, "style image 1 at 40 px and style scale 0.01 is"),
    ({"style_layer_weights": "1,2"}, "style_layer_weights has 2 values but needs 5"),
    ({"content_layer_weights": [1, 1]}, "content_layer_weights has 2 values but needs 1"),
    ({"tv_weight": -1}, "tv_weight must be a non-negative"),
])
def test_bad_style_options(pictures, kwargs, message):
    with pytest.raises(InputError, match=message):
        gatys.transfer(pictures["photo"], pictures["painting"], **{"size": SIZE, **kwargs})


def _chroma(img_hwc):
    from gatys.model.colour import rgb_to_yiq

    return rgb_to_yiq(np.asarray(img_hwc).transpose(2, 0, 1))[1:]


def test_luminance_preservation_keeps_the_photos_chroma(real_weights, pictures):
    photo = gatys.io.images.load_image(pictures["photo"], size=SIZE).transpose(1, 2, 0)
    kwargs = dict(size=SIZE, iterations=8, seed=5)
    plain = gatys.transfer(pictures["photo"], pictures["painting"], **kwargs)
    kept = gatys.transfer(pictures["photo"], pictures["painting"], preserve_colors="luminance", **kwargs)
    plain_diff = np.abs(_chroma(plain.image) - _chroma(photo)).mean()
    kept_diff = np.abs(_chroma(kept.image) - _chroma(photo)).mean()
    assert kept_diff < 0.1 * plain_diff
    assert kept.parameters["preserve_colors"] == "luminance"


def test_histogram_matching_moves_colour_statistics(rng):
    from gatys.model.colour import match_colours

    content = rng.random((3, 20, 30)).astype(np.float32) * 0.3 + np.array([0.5, 0.2, 0.1])[:, None, None]
    style = rng.random((3, 25, 25)).astype(np.float32) * 0.2 + np.array([0.1, 0.3, 0.6])[:, None, None]
    out = match_colours(style, content).reshape(3, -1)
    c = content.reshape(3, -1)
    np.testing.assert_allclose(out.mean(axis=1), c.mean(axis=1), atol=1e-3)
    np.testing.assert_allclose(np.cov(out), np.cov(c), atol=1e-3)


def test_histogram_preservation_targets_the_photos_colours(real_weights, pictures):
    """With the paintings' colours moved to the photo's, a pure style reconstruction ends with
    the photo's mean colour, not the painting's."""
    photo = gatys.io.images.load_image(pictures["photo"], size=SIZE).reshape(3, -1).mean(axis=1)
    art = gatys.io.images.load_image(pictures["painting"], size=SIZE).reshape(3, -1).mean(axis=1)
    runs = {mode: gatys.transfer(pictures["photo"], pictures["painting"], size=SIZE,
                                 iterations=40, content_weight=0, style_weight=1, seed=0,
                                 init="noise", preserve_colors=mode).image.reshape(-1, 3).mean(axis=0)
            for mode in (None, "histogram")}
    assert np.abs(runs["histogram"] - photo).sum() < np.abs(runs["histogram"] - art).sum()
    assert np.abs(runs[None] - art).sum() < np.abs(runs[None] - photo).sum()
    with pytest.raises(InputError, match="unknown preserve_colors 'sepia'"):
        gatys.transfer(pictures["photo"], pictures["painting"], size=SIZE, preserve_colors="sepia")


def test_multi_scale_runs_coarse_to_fine(real_weights, pictures, tmp_path):
    out = tmp_path / "ms.png"
    r = gatys.transfer(pictures["photo"], pictures["painting"], out, size=128, scales=3,
                       iterations=3, seed=1, save_every=4)
    assert r.parameters["scales"] == "32,64,128"
    assert [(h["stage"], h["width"]) for h in r.history] == [(1, 32)] * 3 + [(2, 64)] * 3 + [(3, 128)] * 3
    assert [h["iteration"] for h in r.history] == list(range(1, 10))
    assert r.image.shape == (96, 128, 3)
    assert (tmp_path / "ms_00004.png").is_file() and (tmp_path / "ms_00008.png").is_file()
    with Image.open(tmp_path / "ms_00004.png") as im:
        assert im.size == (64, 48)  # saved during the second stage, at its size
    r = gatys.transfer(pictures["photo"], pictures["painting"], size=128, start_size=40, iterations=1)
    assert r.parameters["scales"] == "40,72,128"
    r = gatys.transfer(pictures["photo"], pictures["painting"], size=64, scales=2,
                       iterations="4,2")  # one count per stage
    assert [h["stage"] for h in r.history] == [1] * 4 + [2] * 2
    assert r.parameters["iterations"] == "4,2"


@pytest.mark.parametrize("kwargs,message", [
    ({"scales": 0}, "scales must be an integer >= 1"),
    ({"scales": 4}, "halve size 40 below 16 px"),
    ({"start_size": 40}, "start_size 40 must be smaller than size 40"),
    ({"start_size": 8}, "start_size must be an integer >= 16"),
    ({"scales": 2, "iterations": [3, 2, 1]}, "iterations has 3 values but there are 2 stages"),
    ({"scales": 1, "iterations": "3,2"}, "iterations has 2 values but there is 1 stage"),
    ({"iterations": "3,x"}, "integers separated by commas"),
    ({"iterations": [3, 0]}, "iterations must be an integer >= 1"),
])
def test_bad_scales(pictures, kwargs, message):
    with pytest.raises(InputError, match=message):
        gatys.transfer(pictures["photo"], pictures["painting"], **{"size": SIZE, **kwargs})


@pytest.mark.parametrize("kwargs,message", [
    ({"style_layers": 5}, "style_layers must be layer names"),
    ({"style_layers": [5]}, "style_layers must be layer names"),
    ({"content_layer": None}, "content_layer must be layer names"),
    ({"style_layer_weights": 5}, "style_layer_weights must be 5 weights"),
    ({"content_layer_weights": {"conv4_2": 1}}, "content_layer_weights must be 1 weights"),
])
def test_options_of_the_wrong_type_are_one_line_input_errors(pictures, kwargs, message):
    """A value of the wrong type through the API is refused as bad input naming the option,
    not a TypeError from inside."""
    with pytest.raises(gatys.InputError, match=message):
        gatys.transfer(pictures["photo"], pictures["painting"], size=32, iterations=1, **kwargs)
