"""Tests written so that plausible wrong changes fail the suite: L-BFGS-B's bounds and history,
the restricted unpickler's allowed names, each of the importer's refusals, and rounding to
8 bits. (Each was a change that once passed every other test.)"""
from __future__ import annotations

import pickle
import subprocess

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from PIL import Image

import gatys
from gatys.errors import WeightsError
from gatys.io.images import load_image, save_image
from gatys.model import optimize
from gatys.model.objective import Objective
from gatys.store.onnx_build import build_model
from gatys.store.onnx_import import import_vgg19
from gatys.store.torch_legacy import MAGIC_NUMBER, PROTOCOL_VERSION, load_state_dict


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    d = tmp_path_factory.mktemp("mutations")
    rng = np.random.default_rng(3)
    for name, shape in (("photo", (30, 40, 3)), ("painting", (40, 30, 3))):
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(d / f"{name}.png")
    return d


# --- L-BFGS-B -------------------------------------------------------------------------------------

def test_every_point_lbfgs_evaluates_stays_in_the_pixel_range(pictures, real_weights,
                                                             monkeypatch):
    """The [0, 1] bounds are L-BFGS-B's, not a clip at the end: no evaluated image leaves them."""
    seen = []
    real = Objective.evaluate

    def recording(self, x, timer=None):
        a = np.asarray(x)
        seen.append((float(a.min()), float(a.max())))
        return real(self, x, timer)

    monkeypatch.setattr(Objective, "evaluate", recording)
    gatys.transfer(pictures / "photo.png", pictures / "painting.png", size=32, iterations=15,
                   seed=0, ratio=1e-5)
    assert len(seen) > 15
    assert min(lo for lo, _ in seen) >= 0.0 and max(hi for _, hi in seen) <= 1.0
    assert min(lo for lo, _ in seen) == 0.0 or max(hi for _, hi in seen) == 1.0  # bounds active


def test_history_reaches_lbfgsb(pictures, real_weights, monkeypatch):
    given = []
    real = optimize.fmin_l_bfgs_b

    def capturing(*args, **kwargs):
        given.append(kwargs["m"])
        return real(*args, **kwargs)

    monkeypatch.setattr(optimize, "fmin_l_bfgs_b", capturing)
    gatys.transfer(pictures / "photo.png", pictures / "painting.png", size=32, iterations=2,
                   seed=0, history=7)
    assert given == [7]


# --- the restricted unpickler ---------------------------------------------------------------------

def test_the_unpickler_allows_exactly_the_names_the_format_needs():
    from gatys.store.torch_legacy import _RestrictedUnpickler

    assert set(_RestrictedUnpickler.ALLOWED) == {
        ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_tensor"),
        *(("torch", f"{kind}Storage") for kind in ("Float", "Double", "Half", "Long", "Int"))}


class _Call:
    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("function, args", [
    (eval, ("__import__('os').system('true')",)), (exec, ("pass",)), (getattr, (object, "x")),
    (subprocess.Popen, (["true"],)), (__import__("os").system, ("true",)),
])
def test_dangerous_calls_are_refused_whatever_the_protocol(protocol, function, args):
    stream = b"".join(pickle.dumps(v, protocol=2) for v in
                      (MAGIC_NUMBER, PROTOCOL_VERSION, {"little_endian": True}))
    stream += pickle.dumps({"0.weight": _Call(function, *args)}, protocol=protocol)
    with pytest.raises(WeightsError, match="refusing to load"):
        load_state_dict(stream)


# --- 8-bit output ---------------------------------------------------------------------------------

def test_saving_rounds_to_the_nearest_8_bit_level(tmp_path):
    x = np.random.default_rng(0).random((3, 17, 23)).astype(np.float32)
    save_image(tmp_path / "x.png", x)
    back = load_image(tmp_path / "x.png")
    assert np.abs(back - x).max() <= 0.5 / 255 + 1e-6


# --- every refusal of the importer ----------------------------------------------------------------

def _node(model, name):
    return next(n for n in model.graph.node if n.name == name)


def _set_attr(node, **values):
    for key, value in values.items():
        for a in list(node.attribute):
            if a.name == key:
                node.attribute.remove(a)
        node.attribute.append(helper.make_attribute(key, value))


def _bypass(model, name):
    """Remove node ``name``, feeding its consumers from its input."""
    node = _node(model, name)
    for other in model.graph.node:
        for i, tensor in enumerate(other.input):
            if tensor == node.output[0]:
                other.input[i] = node.input[0]
    model.graph.node.remove(node)


def _insert_after(model, name, new_node):
    """Put ``new_node`` (one input, one output) on the main path right after node ``name``."""
    node = _node(model, name)
    out = node.output[0]
    for other in model.graph.node:
        for i, tensor in enumerate(other.input):
            if tensor == out:
                other.input[i] = new_node.output[0]
    new_node.input[0] = out
    index = list(model.graph.node).index(node)
    model.graph.node.insert(index + 1, new_node)


def _weights_computed(model):
    """conv2_1's weights as the output of a node that is not a constant."""
    init = next(t for t in model.graph.initializer if t.name == "conv2_1.weight")
    init.name = "raw"
    model.graph.node.insert(0, helper.make_node("Abs", ["raw"], ["conv2_1.weight"]))


def _second_input(model):
    model.graph.input.append(helper.make_tensor_value_info("mask", onnx.TensorProto.FLOAT, [1]))


def _non_bias_add(model):
    model.graph.initializer.append(numpy_helper.from_array(np.ones(3, np.float32), "three"))
    _insert_after(model, "conv1_1", helper.make_node("Add", ["x", "three"], ["added"]))


REFUSALS = {
    "pool 3x3": (lambda m: _set_attr(_node(m, "pool1"), kernel_shape=[3, 3]),
                 "a pool that is not 2x2 with stride 2"),
    "pool stride 1": (lambda m: _set_attr(_node(m, "pool2"), strides=[1, 1]),
                      "a pool that is not 2x2 with stride 2"),
    "grouped conv": (lambda m: _set_attr(_node(m, "conv2_2"), group=2),
                     "grouped, strided or dilated"),
    "strided conv": (lambda m: _set_attr(_node(m, "conv1_2"), strides=[2, 2]),
                     "grouped, strided or dilated"),
    "dilated conv": (lambda m: _set_attr(_node(m, "conv3_1"), dilations=[2, 2]),
                     "grouped, strided or dilated"),
    "no padding": (lambda m: _set_attr(_node(m, "conv1_1"), pads=[0, 0, 0, 0]),
                   "does not pad by 1"),
    "missing relu": (lambda m: _bypass(m, "relu2_1"), "convolution 3 has no ReLU"),
    "pool moved": (lambda m: _bypass(m, "pool1"), "pools follow convolutions"),
    "weights not constant": (_weights_computed, "are not constants"),
    "non-bias add": (_non_bias_add, "an addition on the main path that is not a bias"),
    "odd transpose": (lambda m: _insert_after(m, "relu1_1", helper.make_node(
        "Transpose", ["x"], ["t"], perm=[0, 1, 3, 2])), "unexpected Transpose"),
    "two inputs": (_second_input, "2 inputs, expected one image"),
    "conv on nhwc": (lambda m: _insert_after(m, "relu1_1", helper.make_node(
        "Transpose", ["x"], ["t"], perm=[0, 2, 3, 1])), "a convolution on an NHWC tensor"),
}


@pytest.mark.parametrize("change", REFUSALS)
def test_each_refusal_of_the_importer(change, random_full_vgg, tmp_path):
    model = build_model(random_full_vgg)
    mutate, message = REFUSALS[change]
    mutate(model)
    onnx.save(model, str(tmp_path / "m.onnx"))
    with pytest.raises(WeightsError, match=message):
        import_vgg19(tmp_path / "m.onnx")
