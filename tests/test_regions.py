"""Spatial control (guided Gram matrices, Gatys et al. 2017): the loss against its definition,
how masks reach the layers, a two-region transfer, and the errors for bad masks. The float64
finite-difference checks of its gradient are rows of ``gatys gradcheck`` (test_gradients.py)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import gatys
from gatys.errors import InputError
from gatys.kernels import get_backend
from gatys.model.gradcheck import random_vgg
from gatys.model.guidance import GuidedStyle, layer_masks
from gatys.model.losses import LossWeights, style_layer_loss
from gatys.model.network import Network
from gatys.model.objective import Objective, content_targets, feature_matrix, style_targets
from gatys.run.regions import Region, read_mask

STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


@pytest.fixture(scope="module")
def tiny_net():
    return Network(random_vgg(seed=3), get_backend("cpu"), dtype=np.float64)


def test_guided_loss_matches_its_definition(rng):
    """E_r = 1/(4 N^2 M_r^2) sum_ij (sum_k m_k^2 F_ik F_jk - A_ij)^2, M_r = sum_k m_k^2, written
    out position by position."""
    N, M = 5, 30
    F, m = rng.random((N, M)), rng.random(M)
    A = rng.random((N, N))
    A = A + A.T
    G = np.zeros((N, N))
    for k in range(M):
        G += m[k] ** 2 * np.outer(F[:, k], F[:, k])
    M_r = (m ** 2).sum()
    expected = ((G - A) ** 2).sum() / (4 * N ** 2 * M_r ** 2)
    E, _ = style_layer_loss(F, A, mask=m)
    assert E == pytest.approx(expected, rel=1e-12)


def test_one_region_covering_everything_is_the_papers_loss(tiny_net, rng):
    content, style, x = (rng.random((3, 26, 21)) for _ in range(3))
    w = LossWeights(1e-2, 1.0, {"conv4_2": 1.0}, {n: 0.2 for n in STYLE_LAYERS})
    P = content_targets(tiny_net, content, ["conv4_2"])
    A = style_targets(tiny_net, style, list(STYLE_LAYERS))
    plain = Objective(tiny_net, w, P, A).evaluate(x)
    whole = GuidedStyle(np.ones((26, 21)), style_targets(tiny_net, style, list(STYLE_LAYERS),
                                                         np.ones(style.shape[1:])))
    guided = Objective(tiny_net, w, P, {}, regions=[whole]).evaluate(x)
    assert guided.total == pytest.approx(plain.total, rel=1e-12)
    np.testing.assert_allclose(guided.grad, plain.grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("c", [0.25, 0.6])
def test_a_uniform_grey_region_is_the_papers_style_loss_scaled_by_c_squared(tiny_net, rng, c):
    """Soft masks pin the normalisation binary ones cannot (there sum m = sum m^2): a region of
    grey c over the whole output and the whole painting has G_r = c^2 G over M_r = c^2 M_l
    positions, so its E_l is the paper's, and its share lambda_r = M_r / M_l is c^2."""
    content, style, x = (rng.random((3, 26, 21)) for _ in range(3))
    w = LossWeights(0.0, 1.0, {"conv4_2": 1.0}, {n: 0.2 for n in STYLE_LAYERS})
    P = content_targets(tiny_net, content, ["conv4_2"])
    plain = Objective(tiny_net, w, P, style_targets(tiny_net, style, list(STYLE_LAYERS))
                      ).evaluate(x)
    grey = GuidedStyle(np.full((26, 21), c), style_targets(tiny_net, style, list(STYLE_LAYERS),
                                                           np.full(style.shape[1:], c)))
    guided = Objective(tiny_net, w, P, {}, regions=[grey]).evaluate(x)
    assert guided.style == pytest.approx(c * c * plain.style, rel=1e-10)
    for name in STYLE_LAYERS:
        key = f"style:{name}"
        assert guided.layers[key] == pytest.approx(c * c * plain.layers[key], rel=1e-10)
    np.testing.assert_allclose(guided.grad, c * c * plain.grad, rtol=1e-9, atol=1e-14)


def test_a_binary_painting_mask_keeps_only_the_selected_positions(tiny_net, rng):
    painting = rng.random((3, 24, 20))
    mask = np.zeros((24, 20))
    mask[:, :12] = 1
    guided = style_targets(tiny_net, painting, ["conv1_1"], mask)["conv1_1"]
    F = feature_matrix(tiny_net.forward(painting, keep=["conv1_1"]).features["conv1_1"])
    selected = F[:, mask.reshape(-1) > 0]
    np.testing.assert_allclose(guided, selected @ selected.T / selected.shape[1], rtol=1e-12)


def test_masks_are_averaged_down_at_each_pool():
    mask = np.zeros((9, 11))
    mask[:4, :4] = 1  # one 4x4 corner: 2x2 at pool1, 1x1 at pool2
    m = layer_masks(mask, ["conv1_1", "conv2_1", "conv3_1", "conv4_1"])
    assert m["conv1_1"].shape == (99,) and m["conv1_1"].sum() == 16
    assert m["conv2_1"].reshape(4, 5)[:2, :2].tolist() == [[1, 1], [1, 1]]
    assert m["conv3_1"].reshape(2, 2).tolist() == [[1, 0], [0, 0]]
    assert m["conv4_1"].reshape(1, 1).tolist() == [[0.25]]


def test_pixels_in_no_region_feel_only_the_content(tiny_net, rng):
    """With the left half a region and the right half in none, a pixel of the right half far
    enough from the left (conv1_1 sees 3x3 neighbourhoods) changes neither the style loss nor
    has a style gradient: that is the documented meaning of a mask summing to zero there."""
    style, x = rng.random((3, 16, 16)), rng.random((3, 16, 16))
    mask = np.zeros((16, 16))
    mask[:, :8] = 1
    w = LossWeights(0.0, 1.0, {}, {"conv1_1": 1.0})
    region = GuidedStyle(mask, style_targets(tiny_net, style, ["conv1_1"]))
    obj = Objective(tiny_net, w, {}, {}, regions=[region])
    before = obj.evaluate(x)
    assert np.abs(before.grad[:, :, 10:]).max() == 0
    assert np.abs(before.grad[:, :, :8]).max() > 0
    x2 = x.copy()
    x2[:, 5, 12] += 0.5
    assert obj.evaluate(x2).total == before.total


def test_a_region_that_vanishes_at_a_deep_layer_is_skipped(tiny_net, rng):
    """A region only in the last row of an odd-height image is dropped by the first pool: it
    takes part at conv1_1 and nowhere deeper, with a finite loss."""
    style, x = rng.random((3, 16, 16)), rng.random((3, 17, 16))
    mask = np.zeros((17, 16))
    mask[16] = 1
    w = LossWeights(0.0, 1.0, {}, {"conv1_1": 0.5, "conv2_1": 0.5})
    ev = Objective(tiny_net, w, {}, {}, regions=[GuidedStyle(
        mask, style_targets(tiny_net, style, ["conv1_1", "conv2_1"]))]).evaluate(x)
    assert ev.layers["style:conv2_1"] == 0 and ev.layers["style:conv1_1"] > 0
    assert np.isfinite(ev.grad).all()


@pytest.fixture(scope="module")
def region_files(tmp_path_factory):
    """A 48x64 photo, two paintings (stripes; dots), the left and right halves as masks, and
    bad masks."""
    d = tmp_path_factory.mktemp("regions")
    yy, xx = np.mgrid[0:48, 0:64] / 64.0
    photo = np.stack([0.3 + 0.4 * xx, 0.4 + 0 * yy, 0.6 - 0.3 * yy], axis=2)
    stripes = np.stack([0.5 + 0.5 * np.sin(40 * xx)] * 2 + [0.2 + 0 * xx], axis=2)
    dots = np.stack([0.2 + 0 * xx, 0.5 + 0.5 * np.sin(30 * xx) * np.sin(30 * yy),
                     0.5 + 0.5 * np.cos(25 * yy)], axis=2)
    files = {}
    for name, a in (("photo", photo), ("stripes", stripes), ("dots", dots)):
        files[name] = d / f"{name}.png"
        Image.fromarray((a * 255).astype(np.uint8)).save(files[name])
    left = np.zeros((48, 64), np.uint8)
    left[:, :32] = 255
    for name, a in (("left", left), ("right", 255 - left)):
        files[name] = d / f"{name}.png"
        Image.fromarray(a, "L").save(files[name])
    files["left_small"] = d / "left_small.png"
    Image.fromarray(left, "L").resize((32, 24)).save(files["left_small"])
    files["square"] = d / "square.png"
    Image.fromarray(left[:, :48], "L").save(files["square"])
    files["black"] = d / "black.png"
    Image.fromarray(left * 0, "L").save(files["black"])
    files["colour"] = d / "colour.png"
    Image.open(files["stripes"]).save(files["colour"])
    files["transparent"] = d / "transparent.png"
    Image.fromarray(np.stack([left, left], axis=2), "LA").save(files["transparent"])
    files["opaque"] = d / "opaque.png"
    Image.fromarray(np.stack([left, left * 0 + 255], axis=2), "LA").save(files["opaque"])
    return files


def test_two_region_transfer_keeps_each_region_in_its_own_style(real_weights, region_files):
    f = region_files
    result = gatys.transfer(f["photo"], regions=[f"{f['left']}:{f['stripes']}",
                                                 (f["right"], f["dots"])],
                            size=64, iterations=60, seed=0, ratio=1e-4)
    assert result.parameters["regions"] == f"{f['left']}:{f['stripes']};{f['right']}:{f['dots']}"
    net = gatys.load_network()
    x = net.backend.asarray(result.image.transpose(2, 0, 1))
    w = LossWeights(0.0, 1.0, {}, {n: 0.2 for n in STYLE_LAYERS})
    targets = {name: style_targets(net, gatys.io.images.read_image(f[name], "style", size=64),
                                   list(STYLE_LAYERS)) for name in ("stripes", "dots")}

    def style_loss(mask: str, painting: str) -> float:
        m = read_mask(f[mask], "mask", (48, 64))
        return Objective(net, w, {}, {}, regions=[GuidedStyle(m, targets[painting])]
                         ).evaluate(x).style

    assert style_loss("left", "stripes") < style_loss("left", "dots")
    assert style_loss("right", "dots") < style_loss("right", "stripes")


def test_masks_may_be_scaled_copies_and_soft(region_files):
    m = read_mask(region_files["left_small"], "mask", (48, 64))
    assert m.shape == (48, 64) and m[:, :28].min() == 1 and m[:, 36:].max() == 0
    assert read_mask(region_files["opaque"], "mask", (48, 64)).max() == 1
    soft = read_mask(np.linspace(0, 1, 64)[None].repeat(48, 0), "mask", (24, 32))
    assert 0 < soft[0, 16] < 1


@pytest.mark.parametrize("region, message", [
    (("square", "stripes"), "region 1's mask is 48x48 px but the content image is 64x48"),
    (("colour", "stripes"), "is a colour image: a mask is greyscale"),
    (("transparent", "stripes"), "has transparent pixels"),
    (("black", "stripes"), "region 1's mask is black everywhere"),
    (("left", "stripes", "square"), "region 1's painting mask is 48x48 px but its painting"),
    (("left", "stripes", "black"), "painting mask is black everywhere"),
])
def test_bad_masks_are_refused_in_one_line(real_weights, region_files, region, message):
    paths = tuple(str(region_files[n]) for n in region)
    with pytest.raises(InputError, match=message) as e:
        gatys.transfer(region_files["photo"], regions=[paths], size=32, iterations=1)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kwargs, message", [
    (dict(style="S", regions=["L:S"]), "either as style images or in regions"),
    (dict(regions=["L:S"], style_blend=[1]), "leave style_blend out"),
    (dict(regions=["just-one-part"]), "write MASK:PAINTING"),
    (dict(regions=["a:b:c:d"]), "write MASK:PAINTING"),
    (dict(regions=[]), "regions is empty"),
    (dict(regions=[42]), "each region is a Region"),
    (dict(), "no style image given"),
])
def test_bad_region_arguments(region_files, kwargs, message):
    with pytest.raises(InputError, match=message):
        gatys.transfer(region_files["photo"], size=32, iterations=1, **kwargs)


def test_region_class_and_text_agree():
    assert Region.parse("a.png:b.jpg") == Region("a.png", "b.jpg")
    assert Region.parse("a.png:b.jpg:c.png").painting_mask == "c.png"


def test_cli_regions_and_their_errors(real_weights, region_files, tmp_path):
    f = region_files
    out = tmp_path / "out.png"
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "gatys", "transfer", str(f["photo"]), *args, "-o", str(out),
         "--size", "32", "--iterations", "2", "--quiet"], capture_output=True, text=True)
    done = run("--region", f"{f['left']}:{f['stripes']}", "--region", f"{f['right']}:{f['dots']}")
    assert done.returncode == 0, done.stderr
    assert Image.open(out).text["gatys:regions"].count(":") == 2
    out.unlink()
    bad = run("--region", f"{f['colour']}:{f['stripes']}")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "colour image" in bad.stderr
    assert not out.exists()
    bad = run("--region", "only-a-mask.png")
    assert bad.returncode == 2 and "MASK:PAINTING" in bad.stderr


def test_a_cells_identity_covers_its_region_files(region_files, tmp_path):
    """A sweep or figure cell with regions is recomputed when a mask changes: every file a
    region names is checksummed into the cell's identity."""
    from gatys.batch.cells import Cell, identity
    mask = tmp_path / "mask.png"
    Image.open(region_files["left"]).save(mask)
    cell = Cell("c", "transfer", {"content": str(region_files["photo"]),
                                  "regions": [f"{mask}:{region_files['stripes']}",
                                              [str(region_files["right"]), str(region_files["dots"])]]})
    before = identity(cell, {})
    assert set(before["inputs"]) == {str(region_files[n]) for n in ("photo", "stripes", "right",
                                                                   "dots")} | {str(mask)}
    Image.open(region_files["right"]).save(mask)
    assert identity(cell, {})["inputs"][str(mask)] != before["inputs"][str(mask)]
