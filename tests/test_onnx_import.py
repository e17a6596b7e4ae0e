"""The importer against onnxruntime, on every exporter layout and on the real weights."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import DEVICES
from onnx import helper
from onnx_layouts import LAYOUTS

from gatys.errors import WeightsError
from gatys.kernels import get_backend
from gatys.model.network import Network
from gatys.model.vgg import CONV_NAMES
from gatys.store.onnx_import import import_vgg19

SIZE = 32
CHECKED = ("conv1_1", "conv1_2", "conv2_1", "conv3_1", "conv4_2", "conv5_1", "conv5_4")


def ort_features(path, imported, x, layers):
    """Run the file in onnxruntime with the ReLU outputs of ``layers`` exposed as outputs."""
    model = onnx.load(str(path), load_external_data=True)
    names = {imported.feature_tensors[n][0]: n for n in layers}
    for tensor in names:
        model.graph.output.append(helper.make_empty_tensor_value_info(tensor))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    pre = imported.preprocess
    net_in = (x[list(pre.order)] * np.array(pre.scale)[:, None, None]
              + np.array(pre.shift)[:, None, None]).astype(np.float32)[None]
    if imported.input_layout == "NHWC":
        net_in = net_in.transpose(0, 2, 3, 1)
    outs = session.run(list(names), {imported.input_name: np.ascontiguousarray(net_in)})
    result = {}
    for tensor, value in zip(names, outs):
        layer = names[tensor]
        if imported.feature_tensors[layer][1] == "NHWC":
            value = value.transpose(0, 3, 1, 2)
        result[layer] = value[0]
    return result


def with_average_pooling(path, out):
    """A copy of the ONNX file at ``path`` with its MaxPools made AveragePools, at ``out``."""
    model = onnx.load(str(path))
    for node in model.graph.node:
        if node.op_type == "MaxPool":
            node.op_type = "AveragePool"
    onnx.save(model, str(out))
    return out


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def our_features(imported, x, layers, pool="max", device="cpu"):
    backend = get_backend(device)
    net = Network(imported, backend, pool=pool)
    return {name: backend.to_numpy(f) for name, f in net.forward(x, keep=layers).features.items()}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layout_matches_onnxruntime(layout, random_full_vgg, tmp_path, rng):
    path = LAYOUTS[layout](random_full_vgg, tmp_path / "model.onnx", SIZE)
    imported = import_vgg19(path)
    assert imported.channels == random_full_vgg.channels
    for ours, original in zip(imported.weights, random_full_vgg.weights):
        np.testing.assert_array_equal(ours, original)
    for ours, original in zip(imported.biases, random_full_vgg.biases):
        np.testing.assert_array_equal(ours, original)
    x = rng.random((3, SIZE, SIZE)).astype(np.float32)
    expected = ort_features(path, imported, x, CHECKED)
    got = our_features(imported, x, CHECKED)
    for name in CHECKED:
        assert got[name].shape == expected[name].shape
        assert rel_err(got[name], expected[name]) < 1e-4, name


@pytest.mark.parametrize("layout,preprocess", [
    ("ours", "caffe"), ("zoo_vgg19_7", "torch"), ("zoo_caffe2", "caffe"),
    ("torch_legacy", "torch"), ("torch_dynamo", "torch"), ("keras_tf2onnx", "caffe")])
def test_preprocessing_from_metadata_or_layout(layout, preprocess, random_full_vgg, tmp_path):
    path = LAYOUTS[layout](random_full_vgg, tmp_path / "model.onnx", SIZE)
    assert import_vgg19(path).preprocess.name == preprocess
    other = "torch" if preprocess == "caffe" else "caffe"
    assert import_vgg19(path, preprocess=other).preprocess.name == other


@pytest.mark.parametrize("device", DEVICES)
def test_average_pooling_matches_onnxruntime(random_full_vgg, tmp_path, rng, device):
    path = LAYOUTS["ours"](random_full_vgg, tmp_path / "model.onnx", SIZE)
    avg_path = with_average_pooling(path, tmp_path / "avg.onnx")
    imported = import_vgg19(avg_path)
    x = rng.random((3, 40, 36)).astype(np.float32)
    expected = ort_features(avg_path, imported, x, CHECKED)
    got = our_features(imported, x, CHECKED, pool="avg", device=device)
    for name in CHECKED:
        assert rel_err(got[name], expected[name]) < 1e-4, name


@pytest.mark.parametrize("device", DEVICES)
def test_real_weights_match_onnxruntime(real_weights, rng, device):
    imported = import_vgg19(real_weights)
    assert imported.preprocess.name == "caffe"
    x = rng.random((3, 48, 40)).astype(np.float32)
    names = CONV_NAMES[: len(imported.weights)]  # all 16, or up to conv5_1 (gpu_check)
    expected = ort_features(real_weights, imported, x, names)
    got = our_features(imported, x, names, device=device)
    for name in names:
        assert rel_err(got[name], expected[name]) < 1e-4, name


def test_vgg16_is_refused_with_what_was_found(random_full_vgg, tmp_path):
    path = LAYOUTS["torch_legacy"](random_full_vgg, tmp_path / "model.onnx", SIZE)
    model = onnx.load(str(path))
    # Drop conv3_4, conv4_4 and conv5_4 with their ReLUs: VGG-16's topology.
    graph = model.graph
    drop = {"/features/features.14/Conv", "/features/features.15/Relu",
            "/features/features.23/Conv", "/features/features.24/Relu",
            "/features/features.32/Conv", "/features/features.33/Relu"}
    keep = [n for n in graph.node if n.name not in drop]
    rename = {"/features/features.15/Relu_output_0": "/features/features.13/Relu_output_0",
              "/features/features.24/Relu_output_0": "/features/features.22/Relu_output_0",
              "/features/features.33/Relu_output_0": "/features/features.31/Relu_output_0"}
    for n in keep:
        for i, name in enumerate(n.input):
            n.input[i] = rename.get(name, name)
    del graph.node[:]
    graph.node.extend(keep)
    onnx.save(model, str(tmp_path / "vgg16.onnx"))
    with pytest.raises(WeightsError, match="not a VGG-19: .* has 13 3x3 convolutions"):
        import_vgg19(tmp_path / "vgg16.onnx")


def test_non_vgg_graph_is_refused(tmp_path):
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), str(tmp_path / "sigmoid.onnx"))
    with pytest.raises(WeightsError, match="not a VGG-19: unsupported operation Sigmoid"):
        import_vgg19(tmp_path / "sigmoid.onnx")


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("hello, not protobuf at all\n" * 10)
    with pytest.raises(WeightsError, match="not a readable ONNX file"):
        import_vgg19(path)


def test_missing_external_data(random_full_vgg, tmp_path):
    path = LAYOUTS["torch_dynamo"](random_full_vgg, tmp_path / "model.onnx", SIZE)
    (tmp_path / "model.onnx.data").unlink()
    with pytest.raises(WeightsError, match="external data"):
        import_vgg19(path)
