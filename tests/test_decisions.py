"""tests/support/decisions.py, which the float32 comparisons of two engines rest on: a backend
replaying another's ReLU decisions, on made-up layers; and on the paper's weights, the CPU
engine on one thread and on two agreeing in float32 once their decisions are shared."""
from __future__ import annotations

import types

import numpy as np
import pytest
from support.decisions import SharedRelus


def _backend(pre: np.ndarray) -> types.SimpleNamespace:
    """A stand-in whose every conv layer's forward pass gives ReLU(``pre``) and its mask."""
    def forward(*args, pooled=None):
        return np.maximum(pre, 0), pre > 0
    return types.SimpleNamespace(conv3x3_relu_padded=forward, to_numpy=np.asarray,
                                 asarray=np.asarray)


def test_the_replaying_backend_takes_the_recorded_decisions_and_counts_the_others():
    pre = np.array([[1.0, -2.0, 3e-8, 4.0]])
    shared = SharedRelus()
    a = shared.recording(_backend(pre))
    a.conv3x3_relu_padded()
    a.conv3x3_relu_padded()
    b = shared.replaying(_backend(pre * [1, 1, -1, 1]))
    out, mask = b.conv3x3_relu_padded()
    b.conv3x3_relu_padded()
    with pytest.raises(ValueError, match="not the same sequence"):
        b.conv3x3_relu_padded()
    np.testing.assert_array_equal(mask, pre > 0)
    np.testing.assert_array_equal(out, [[1.0, 0.0, 0.0, 4.0]])
    assert (shared.decisions, shared.differing) == (8, 2)
    assert b.to_numpy is np.asarray  # the rest is the backend's own


def test_one_thread_and_two_agree_in_float32_on_the_real_weights(real_weights, rng):
    """At 64 x 80 the two thread counts cut the layers differently, so their float32 roundings
    differ and may decide a ReLU differently (on a Zen 4, one of conv2_1's, which moved the
    gradient 1.3e-4); with the decisions shared, loss and gradient agree to 1e-5 relative."""
    from gatys.kernels import Backend
    from gatys.kernels.workers import Workers
    from gatys.model.network import Network
    from gatys.model.objective import paper_loss_and_gradient
    from gatys.store.onnx_import import import_vgg19

    vgg = import_vgg19(real_weights)
    p, a, x = (rng.random((3, 64, 80)) for _ in range(3))
    one, two = (Backend("cpu", np, Workers(threads)) for threads in (1, 2))
    shared = SharedRelus()
    total_1, grad_1 = paper_loss_and_gradient(
        Network(vgg, shared.recording(one), dtype=np.float32), p, a, x)
    total_2, grad_2 = paper_loss_and_gradient(
        Network(vgg, shared.replaying(two), dtype=np.float32), p, a, x)
    assert shared.differing <= 1e-5 * shared.decisions
    assert total_2 == pytest.approx(total_1, rel=1e-5)
    assert np.linalg.norm(grad_2 - grad_1) < 1e-5 * np.linalg.norm(grad_1)
