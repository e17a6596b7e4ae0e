"""bench/look.py: the fixed metric a transfer's look is judged by (docs/look.md)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gatys.bench import look
from gatys.kernels import get_backend
from gatys.model.network import Network
from gatys.store import weights as weights_store


def _png(path, rgb):
    Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    """A photo (smooth shapes, a flat top band), a painting (stripes) of another size, and a
    'result' between them, as PNG files."""
    d = tmp_path_factory.mktemp("look")
    yy, xx = np.mgrid[0:48, 0:64] / 64.0
    photo = np.stack([0.3 + xx, yy, 0.3 + 0.2 * np.sin(6 * xx) * np.cos(4 * yy)], axis=2)
    photo[:12] = (0.3, 0.5, 0.8)
    yy, xx = np.mgrid[0:60, 0:40] / 40.0
    painting = np.stack([0.5 + 0.5 * np.sin(20 * (xx + yy)), 0.3 + 0 * xx,
                         0.5 + 0.5 * np.cos(9 * xx)], axis=2)
    result = 0.7 * photo + 0.3 * np.resize(painting[:48, :40], (48, 64, 3))
    return {name: _png(d / f"{name}.png", a) for name, a in
            (("photo", photo), ("painting", painting), ("result", result))}


def test_the_photo_is_at_distance_zero_from_itself(real_weights, trio):
    row = look.score_files(trio["photo"], trio["photo"], trio["photo"])
    assert row["content"] == 0
    assert all(row[f"E_{name}"] < 1e-9 for name in look.STYLE_LAYERS)
    assert row["style"] < 1e-9


def test_the_score_is_eq1_per_position_and_eq4_under_average_pooling(real_weights, trio):
    """Recomputed here in float64 from the network's features alone (no loss code of gatys):
    content = eq. 1 / M_l at conv4_2 against the photo at the result's shape, E_l = eq. 4
    against the painting at the result's longest side, style = their mean."""
    from gatys.io.images import load_image

    row = look.score_files(trio["result"], trio["photo"], trio["painting"])
    net = Network(weights_store.load(str(real_weights)), get_backend("cpu"), pool="avg",
                  dtype=np.float64)
    x = load_image(trio["result"])
    P = load_image(trio["photo"], shape=x.shape[1:])
    a = load_image(trio["painting"], size=max(x.shape[1:]))
    layers = [*look.STYLE_LAYERS, look.CONTENT_LAYER]
    fx, fp, fa = (net.forward(im.astype(np.float64), keep=layers).features for im in (x, P, a))
    F = fx["conv4_2"].reshape(fx["conv4_2"].shape[0], -1)
    content = 0.5 * ((F - fp["conv4_2"].reshape(F.shape)) ** 2).sum() / F.shape[1]
    np.testing.assert_allclose(row["content"], content, rtol=1e-3)
    E = {}
    for name in look.STYLE_LAYERS:
        F = fx[name].reshape(fx[name].shape[0], -1)
        Fa = fa[name].reshape(fa[name].shape[0], -1)
        N, M = F.shape
        A = Fa @ Fa.T * (M / Fa.shape[1])  # the painting's Gram at the result's M_l
        E[name] = ((F @ F.T - A) ** 2).sum() / (4 * N**2 * M**2)
        np.testing.assert_allclose(row[f"E_{name}"], E[name], rtol=1e-3)
    np.testing.assert_allclose(row["style"], np.mean(list(E.values())), rtol=1e-3)
    assert row["content"] > 0 and row["style"] > 0


def test_grain_and_dots_are_measured_over_the_flat_region(real_weights, trio):
    row = look.score_files(trio["result"], trio["photo"], trio["painting"])
    assert row["region"] == "sky" and 0.05 < row["region_share"] < 0.25  # the flat top band
    assert row["grain"] >= 0 and row["dots"] >= 0 and row["painting_dots"] > 0
    noisy = np.asarray(Image.open(trio["result"]), np.float64) / 255
    noisy[:12] += np.random.default_rng(0).normal(0, 0.05, noisy[:12].shape)
    grainy = look.score_files(_png(trio["result"].with_name("noisy.png"), noisy),
                              trio["photo"], trio["painting"])
    assert grainy["grain"] > 3 * row["grain"] > 0


def test_the_flattest_region_of_a_photo_without_sky():
    """A grey flat left half and a textured right half: the flat mask is inside the left."""
    rng = np.random.default_rng(0)
    photo = np.full((80, 120, 3), 0.5)
    photo[:, 60:] += rng.normal(0, 0.1, (80, 60, 3))
    mask = look.flat_mask(photo)
    assert mask[:, :55].mean() > 0.6 and not mask[:, 60:].any()
    name, region = look.region_of(photo)
    assert name == "flat" and (region == mask).all()


def test_the_command_scores_a_picture_and_refuses_a_missing_file(real_weights, trio, tmp_path,
                                                                 capsys):
    out = tmp_path / "row.json"
    assert look.main([str(trio["result"]), str(trio["photo"]), str(trio["painting"]),
                      "--json", str(out)]) == 0
    assert json.loads(out.read_text())["content"] > 0
    assert "result.png" in capsys.readouterr().out
    for argv in ([str(trio["result"]), str(tmp_path / "nothing.png"), str(trio["painting"])],
                 [str(trio["result"])], ["--run", "--photos", "mars"]):
        with pytest.raises(SystemExit) as e:
            look.main(argv)
        assert e.value.code == 2
    assert "nothing.png not found" in capsys.readouterr().err


def _pair_folder(tmp_path, trio):
    """A folder of pictures named as the pair Tübingen and The Starry Night's."""
    images = tmp_path / "images"
    images.mkdir()
    for name, source in (("tubingen.jpg", "photo"), ("starry_night.jpg", "painting")):
        Image.open(trio[source]).convert("RGB").save(images / name, quality=95)
    return images


def test_the_run_scores_each_variant_once_and_resumes(real_weights, trio, tmp_path, capsys):
    """--run on a folder of pictures named as the pairs': one row per variant and the photo's
    own, kept in --json; a second run computes nothing it has."""
    images = _pair_folder(tmp_path, trio)
    argv = ["--run", "--images", str(images), "--photos", "tubingen", "--paintings",
            "starry_night", "--variants", "0.2 default;max, photo start, 1e-4, 2 scales",
            "--size", "64", "--iterations", "2", "--keep", str(tmp_path / "kept"), "--json",
            str(tmp_path / "look.json")]
    assert look.main(argv) == 0
    rows = json.loads((tmp_path / "look.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["the photo itself", "0.2 default",
                                            "max, photo start, 1e-4, 2 scales"]
    assert rows[0]["content"] == 0 and all(r["content"] > 0 for r in rows[1:])
    assert all((tmp_path / "kept" / r["file"]).is_file() for r in rows[1:])
    capsys.readouterr()
    assert look.main(argv) == 0
    again = json.loads((tmp_path / "look.json").read_text())["rows"]
    assert [r["variant"] for r in again] == [r["variant"] for r in rows]
    assert again[1:] == rows[1:]  # not computed again
    with pytest.raises(SystemExit) as e:
        look.main([*argv[:8], "--variants", "mine"])
    assert e.value.code == 2
    (tmp_path / "other.json").write_text("[1, 2]")
    capsys.readouterr()
    assert look.main([*argv[:-1], str(tmp_path / "other.json")]) == 2
    assert "other.json is not a bench.look --json file" in capsys.readouterr().err


def test_rescore_scores_the_kept_pictures_again_and_names_the_missing(real_weights, trio,
                                                                      tmp_path, capsys):
    """--rescore recomputes each row from its picture (a metric changed since) and keeps the
    run's own fields; a picture no longer there is named, its row left, exit 1."""
    images = _pair_folder(tmp_path, trio)
    kept, out = tmp_path / "kept", tmp_path / "look.json"
    assert look.main(["--run", "--images", str(images), "--photos", "tubingen", "--paintings",
                      "starry_night", "--variants", "0.2 default", "--size", "64",
                      "--iterations", "2", "--keep", str(kept), "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    stale = [{**r, "lattice": -1.0, "dots": -1.0, "painting_lattice": -1.0} for r in rows]
    out.write_text(json.dumps({"rows": stale}))
    rescore = ["--rescore", "--images", str(images), "--keep", str(kept), "--json", str(out)]
    assert look.main(rescore) == 0
    again = json.loads(out.read_text())["rows"]
    assert again == rows  # the same figures, the seconds and options kept
    assert again[1]["lattice"] >= 0 and again[1]["painting_lattice"] >= 0
    (kept / rows[1]["file"]).unlink()
    capsys.readouterr()
    assert look.main(rescore) == 1
    assert rows[1]["file"] in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        look.main(["--rescore", "--run", "--json", str(out)])
    assert e.value.code == 2


def test_lattice_tells_dots_from_strokes():
    """A field of dots with halos rings in every direction; stripes (and concentric rings) ring
    only across themselves: the lattice measure scores the dots far above both, where the dots
    measure scores the stripes above the dots."""
    from scipy import ndimage

    from gatys.bench.artefacts import dots, lattice

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:192, :192]
    impulses = np.zeros((192, 192))
    impulses[4::8, 4::8] = 1
    field = 0.5 + 6 * (ndimage.gaussian_filter(impulses, 1.0) - ndimage.gaussian_filter(impulses,
                                                                                        2.0))
    stripes = 0.5 + 0.2 * np.cos(2 * np.pi * yy / 6 + 0.3 * np.sin(2 * np.pi * xx / 96))
    rings = 0.5 + 0.2 * np.cos(2 * np.pi * np.hypot(yy - 96, xx - 96) / 6)
    painting = np.repeat(0.5 + 0.1 * rng.standard_normal((192, 192, 1)), 3, axis=2)
    whole = np.ones((192, 192), bool)
    rgb = {name: np.repeat(y[..., None], 3, axis=2) for name, y in
           (("dots", field), ("stripes", stripes), ("rings", rings))}
    on = {name: lattice(im, whole, painting) for name, im in rgb.items()}
    assert on["dots"] > 20 * max(on["stripes"], on["rings"])
    assert dots(rgb["stripes"], whole, painting) > dots(rgb["dots"], whole, painting)
    assert lattice(rgb["dots"], np.zeros((192, 192), bool), painting) == 0.0
