"""Loss and gradient on the real weights against an independent computation: onnxruntime's
features with the paper's equations written out here, and float64 finite differences."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import DEVICES
from test_onnx_import import ort_features

from gatys.kernels import get_backend
from gatys.model.gradcheck import directional_check
from gatys.model.losses import LossWeights
from gatys.model.network import Network
from gatys.model.objective import Objective, content_targets, style_targets
from gatys.model.vgg import CONV_NAMES
from gatys.store.onnx_import import import_vgg19

STYLE = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
SHAPE = (40, 48)


@pytest.fixture(scope="module")
def setup(real_weights):
    rng = np.random.default_rng(11)
    imported = import_vgg19(real_weights)
    p, a, x = (rng.random((3, *SHAPE)).astype(np.float32) for _ in range(3))
    return imported, p, a, x


def reference_loss(imported, path, p, a, x, alpha, beta, scale):
    """Eqs. 1, 3, 4, 5, 7 on onnxruntime's features (max pooling: the file's own network)."""
    layers = ["conv4_2", *STYLE]
    Fp, Fa, Fx = (ort_features(path, imported, img, layers) for img in (p, a, x))
    flat = lambda f: f.reshape(f.shape[0], -1).astype(np.float64)  # noqa: E731
    F, P = flat(Fx["conv4_2"]), flat(Fp["conv4_2"])
    L_content = 0.5 * ((F - P) ** 2).sum() / (F.shape[1] if scale == "per-position" else 1)
    L_style = 0.0
    for name in STYLE:
        F, Fa_ = flat(Fx[name]), flat(Fa[name])
        N, M = F.shape
        G, A = F @ F.T, Fa_ @ Fa_.T
        L_style += 0.2 * ((G - A) ** 2).sum() / (4 * N ** 2 * M ** 2)
    return alpha * L_content + beta * L_style, L_content, L_style


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scale", ["per-position", "printed"])
def test_loss_matches_onnxruntime_reference(setup, real_weights, scale, device):
    imported, p, a, x = setup
    net = Network(imported, get_backend(device), pool="max")
    w = LossWeights(1e-3, 1.0, {"conv4_2": 1.0}, {n: 0.2 for n in STYLE})
    obj = Objective(net, w, content_targets(net, p, ["conv4_2"]), style_targets(net, a, list(STYLE)), scale)
    ev = obj.evaluate(x)
    total, L_content, L_style = reference_loss(imported, real_weights, p, a, x, 1e-3, 1.0, scale)
    assert ev.content == pytest.approx(L_content, rel=1e-4)
    assert ev.style == pytest.approx(L_style, rel=1e-4)
    assert ev.total == pytest.approx(total, rel=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pool", ["avg", "max"])
def test_gradient_on_real_weights(setup, pool, device):
    """float64 analytic gradient vs central differences, and float32 vs float64."""
    imported, p, a, x = setup
    backend = get_backend(device)
    xp = backend.xp
    results = {}
    for dtype in (np.float64, np.float32):
        net = Network(imported, backend, pool=pool, dtype=dtype)
        w = LossWeights(1e-3, 1.0, {"conv4_2": 1.0}, {n: 0.2 for n in STYLE})
        P = content_targets(net, p.astype(dtype), ["conv4_2"])
        A = style_targets(net, a.astype(dtype), list(STYLE))
        results[dtype] = (Objective(net, w, P, A), x.astype(dtype))
    obj64, x64 = results[np.float64]
    g64 = obj64.evaluate(x64).grad
    check = directional_check("real", lambda z: obj64.evaluate(xp.asarray(z)).total,
                              g64, xp.asarray(x64), xp, directions=3, eps=1e-6)
    assert check.max_rel_error < 1e-5, check
    obj32, x32 = results[np.float32]
    ev32 = obj32.evaluate(x32)
    assert ev32.total == pytest.approx(obj64.evaluate(x64).total, rel=1e-4)
    g32, g64 = backend.to_numpy(ev32.grad), backend.to_numpy(g64)
    assert np.linalg.norm(g32 - g64) / np.linalg.norm(g64) < 1e-4


def test_feature_names_cover_every_layer(real_weights):
    assert list(import_vgg19(real_weights).feature_tensors) == list(CONV_NAMES)
