"""VGG-19 ONNX files in the layouts users have (NOTES §4), written from given weights.

Each writer mimics one exporter's conventions: names, opset and IR version, where the weights
live (initializers, Constant nodes, Identity chains, external data), bias or none, input layout,
and the classifier head that follows the convolutions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from gatys.model.vgg import LAYERS, VGGWeights
from gatys.store.onnx_build import build_model

HEAD_CLASSES = 10


def _model(nodes, inputs, outputs, inits, opset, ir_version, extra_inputs=()):
    graph = helper.make_graph(nodes, "g", [*inputs, *extra_inputs], outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def _head_weights(rng, features: int):
    return (rng.standard_normal((HEAD_CLASSES, features)) * 0.01).astype(np.float32)


def ours(vgg: VGGWeights, path: Path, size: int) -> Path:
    onnx.save(build_model(vgg), str(path))
    return path


def zoo_vgg19_7(vgg: VGGWeights, path: Path, size: int) -> Path:
    """ONNX Model Zoo vgg19-7 (from MXNet): opset 7, IR v3, initializers also listed as graph
    inputs, nodes vgg0_conv{i}_fwd, head Flatten/Gemm/Relu/Dropout/Gemm."""
    rng = np.random.default_rng(1)
    nodes, inits, h, conv, pool = [], [], "data", 0, 0
    for name in LAYERS:
        if name.startswith("conv"):
            w, b = f"vgg0_conv{conv}_weight", f"vgg0_conv{conv}_bias"
            inits += [numpy_helper.from_array(vgg.weights[conv], w), numpy_helper.from_array(vgg.biases[conv], b)]
            nodes.append(helper.make_node("Conv", [h, w, b], [f"vgg0_conv{conv}_fwd"], name=f"vgg0_conv{conv}_fwd",
                                          kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], group=1,
                                          dilations=[1, 1]))
            nodes.append(helper.make_node("Relu", [f"vgg0_conv{conv}_fwd"], [f"vgg0_relu{conv}_fwd"],
                                          name=f"vgg0_relu{conv}_fwd"))
            h = f"vgg0_relu{conv}_fwd"
            conv += 1
        else:
            nodes.append(helper.make_node("MaxPool", [h], [f"vgg0_pool{pool}_fwd"], name=f"vgg0_pool{pool}_fwd",
                                          kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]))
            h = f"vgg0_pool{pool}_fwd"
            pool += 1
    feat = 512 * (size // 32) ** 2
    inits += [numpy_helper.from_array(_head_weights(rng, feat), "vgg0_dense0_weight"),
              numpy_helper.from_array(np.zeros(HEAD_CLASSES, np.float32), "vgg0_dense0_bias")]
    nodes += [helper.make_node("Flatten", [h], ["flat"], axis=1),
              helper.make_node("Gemm", ["flat", "vgg0_dense0_weight", "vgg0_dense0_bias"], ["fc"],
                               alpha=1.0, beta=1.0, transB=1),
              helper.make_node("Relu", ["fc"], ["fc_relu"]),
              helper.make_node("Dropout", ["fc_relu"], ["vgg0_dense0_fwd"], ratio=0.5)]
    extra = [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims)) for t in inits]
    model = _model(nodes, [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, size, size])],
                   [helper.make_tensor_value_info("vgg0_dense0_fwd", TensorProto.FLOAT, [1, HEAD_CLASSES])],
                   inits, opset=7, ir_version=3, extra_inputs=extra)
    onnx.save(model, str(path))
    return path


def zoo_caffe2(vgg: VGGWeights, path: Path, size: int) -> Path:
    """ONNX Model Zoo vgg19-caffe2-9: input data_0, initializers conv1_1_w_0/_b_0, head
    Reshape/Gemm/Relu/Dropout/Gemm/Softmax."""
    rng = np.random.default_rng(2)
    nodes, inits, h, conv = [], [], "data_0", 0
    for name in LAYERS:
        if name.startswith("conv"):
            w, b = f"{name}_w_0", f"{name}_b_0"
            inits += [numpy_helper.from_array(vgg.weights[conv], w), numpy_helper.from_array(vgg.biases[conv], b)]
            nodes += [helper.make_node("Conv", [h, w, b], [f"{name}_1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                       strides=[1, 1]),
                      helper.make_node("Relu", [f"{name}_1"], [f"{name}_2"])]
            h = f"{name}_2"
            conv += 1
        else:
            nodes.append(helper.make_node("MaxPool", [h], [f"{name}_1"], kernel_shape=[2, 2], strides=[2, 2],
                                          pads=[0, 0, 0, 0]))
            h = f"{name}_1"
    feat = 512 * (size // 32) ** 2
    inits += [numpy_helper.from_array(np.array([1, feat], np.int64), "OC2_DUMMY_1"),
              numpy_helper.from_array(_head_weights(rng, feat), "fc6_w_0"),
              numpy_helper.from_array(np.zeros(HEAD_CLASSES, np.float32), "fc6_b_0")]
    nodes += [helper.make_node("Reshape", [h, "OC2_DUMMY_1"], ["OC2_DUMMY_0"]),
              helper.make_node("Gemm", ["OC2_DUMMY_0", "fc6_w_0", "fc6_b_0"], ["fc6_1"], transB=1),
              helper.make_node("Relu", ["fc6_1"], ["fc6_2"]),
              helper.make_node("Dropout", ["fc6_2"], ["fc6_3"], ratio=0.5),
              helper.make_node("Softmax", ["fc6_3"], ["prob_1"])]
    model = _model(nodes, [helper.make_tensor_value_info("data_0", TensorProto.FLOAT, [1, 3, size, size])],
                   [helper.make_tensor_value_info("prob_1", TensorProto.FLOAT, [1, HEAD_CLASSES])],
                   inits, opset=9, ir_version=4)
    onnx.save(model, str(path))
    return path


def torch_legacy(vgg: VGGWeights, path: Path, size: int) -> Path:
    """torch.onnx.export (TorchScript exporter) of torchvision's VGG-19: nodes
    /features/features.N/Conv, initializers features.N.weight/.bias, a few weights reached
    through Identity nodes (deduplicated initializers), AveragePool head, Flatten, Gemm."""
    rng = np.random.default_rng(3)
    nodes, inits, h, conv, index = [], [], "input", 0, 0
    for name in LAYERS:
        if name.startswith("conv"):
            w, b = f"features.{index}.weight", f"features.{index}.bias"
            inits += [numpy_helper.from_array(vgg.weights[conv], w), numpy_helper.from_array(vgg.biases[conv], b)]
            if conv % 5 == 3:  # weight behind an Identity, as the exporter does for shared tensors
                nodes.append(helper.make_node("Identity", [w], [f"onnx::Conv_{100 + conv}"],
                                              name=f"/Identity_{conv}"))
                w = f"onnx::Conv_{100 + conv}"
            out = f"/features/features.{index}/Conv_output_0"
            nodes.append(helper.make_node("Conv", [h, w, b], [out], name=f"/features/features.{index}/Conv",
                                          kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1],
                                          group=1))
            relu = f"/features/features.{index + 1}/Relu_output_0"
            nodes.append(helper.make_node("Relu", [out], [relu], name=f"/features/features.{index + 1}/Relu"))
            h, conv, index = relu, conv + 1, index + 2
        else:
            out = f"/features/features.{index}/MaxPool_output_0"
            nodes.append(helper.make_node("MaxPool", [h], [out], name=f"/features/features.{index}/MaxPool",
                                          kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0], ceil_mode=0))
            h, index = out, index + 1
    feat = 512 * (size // 32) ** 2
    inits += [numpy_helper.from_array(_head_weights(rng, feat), "classifier.0.weight"),
              numpy_helper.from_array(np.zeros(HEAD_CLASSES, np.float32), "classifier.0.bias")]
    nodes += [helper.make_node("AveragePool", [h], ["/avgpool/AveragePool_output_0"], name="/avgpool/AveragePool",
                               kernel_shape=[1, 1], strides=[1, 1]),
              helper.make_node("Flatten", ["/avgpool/AveragePool_output_0"], ["/Flatten_output_0"], axis=1),
              helper.make_node("Gemm", ["/Flatten_output_0", "classifier.0.weight", "classifier.0.bias"],
                               ["output"], transB=1)]
    model = _model(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
                   [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, HEAD_CLASSES])],
                   inits, opset=17, ir_version=8)
    onnx.save(model, str(path))
    return path


def torch_dynamo(vgg: VGGWeights, path: Path, size: int) -> Path:
    """torch.onnx.export(dynamo=True): nodes node_conv2d_K, weights in an external data file
    model.onnx.data, biases of some layers as Constant nodes, head via MatMul/Add."""
    rng = np.random.default_rng(4)
    nodes, inits, h, conv, k = [], [], "x", 0, 0
    for name in LAYERS:
        if name.startswith("conv"):
            w, b = f"features.{conv}.weight", f"features.{conv}.bias"
            inits.append(numpy_helper.from_array(vgg.weights[conv], w))
            if conv % 2:
                nodes.append(helper.make_node("Constant", [], [b], name=f"node_Constant_{conv}",
                                              value=numpy_helper.from_array(vgg.biases[conv], "v")))
            else:
                inits.append(numpy_helper.from_array(vgg.biases[conv], b))
            nodes.append(helper.make_node("Conv", [h, w, b], [f"conv2d_{k}"], name=f"node_conv2d_{k}",
                                          pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1,
                                          auto_pad="NOTSET"))
            nodes.append(helper.make_node("Relu", [f"conv2d_{k}"], [f"relu_{k}"], name=f"node_relu_{k}"))
            h, conv, k = f"relu_{k}", conv + 1, k + 1
        else:
            nodes.append(helper.make_node("MaxPool", [h], [f"max_pool2d_{k}"], name=f"node_max_pool2d_{k}",
                                          kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]))
            h, k = f"max_pool2d_{k}", k + 1
    feat = 512 * (size // 32) ** 2
    inits += [numpy_helper.from_array(np.array([1, feat], np.int64), "shape"),
              numpy_helper.from_array(_head_weights(rng, feat).T.copy(), "classifier.0.weight_t")]
    nodes += [helper.make_node("Reshape", [h, "shape"], ["view"], name="node_view"),
              helper.make_node("MatMul", ["view", "classifier.0.weight_t"], ["logits"], name="node_linear")]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
                   [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, HEAD_CLASSES])],
                   inits, opset=18, ir_version=10)
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location=path.name + ".data", size_threshold=1024)
    return path


def keras_tf2onnx(vgg: VGGWeights, path: Path, size: int) -> Path:
    """Keras VGG19 through tf2onnx: NHWC input and a Transpose into NCHW, SAME_UPPER padding,
    zero biases dropped (2-input Conv), some weights as Constant nodes behind a Transpose from
    Keras' HWIO, and a Transpose back to NHWC before the Flatten/MatMul head."""
    rng = np.random.default_rng(5)
    nodes, inits, conv = [], [], 0
    nodes.append(helper.make_node("Transpose", ["input_1"], ["input_1_nchw"], perm=[0, 3, 1, 2],
                                  name="Transpose__input"))
    h = "input_1_nchw"
    for name in LAYERS:
        block = name.replace("conv", "block").replace("_", "_conv") if name.startswith("conv") else name
        if name.startswith("conv"):
            w = f"model/{block}/Conv2D/ReadVariableOp:0"
            if conv % 3 == 1:  # HWIO constant transposed to OIHW by a Transpose node
                hwio = vgg.weights[conv].transpose(2, 3, 1, 0).copy()
                nodes.append(helper.make_node("Constant", [], [w + "_hwio"],
                                              value=numpy_helper.from_array(hwio, "c")))
                nodes.append(helper.make_node("Transpose", [w + "_hwio"], [w], perm=[3, 2, 0, 1]))
            else:
                inits.append(numpy_helper.from_array(vgg.weights[conv], w))
            inputs = [h, w]
            if np.any(vgg.biases[conv]):
                b = f"model/{block}/BiasAdd/ReadVariableOp:0"
                inits.append(numpy_helper.from_array(vgg.biases[conv], b))
                inputs.append(b)
            nodes.append(helper.make_node("Conv", inputs, [f"model/{block}/BiasAdd:0"], name=f"model/{block}/BiasAdd",
                                          kernel_shape=[3, 3], strides=[1, 1], dilations=[1, 1], auto_pad="SAME_UPPER"))
            nodes.append(helper.make_node("Relu", [f"model/{block}/BiasAdd:0"], [f"model/{block}/Relu:0"],
                                          name=f"model/{block}/Relu"))
            h, conv = f"model/{block}/Relu:0", conv + 1
        else:
            b = name.replace("pool", "block")
            nodes.append(helper.make_node("MaxPool", [h], [f"model/{b}_pool/MaxPool:0"], kernel_shape=[2, 2],
                                          strides=[2, 2], name=f"model/{b}_pool/MaxPool"))
            h = f"model/{b}_pool/MaxPool:0"
    feat = 512 * (size // 32) ** 2
    inits += [numpy_helper.from_array(np.array([-1, feat], np.int64), "const_shape"),
              numpy_helper.from_array(_head_weights(rng, feat).T.copy(), "dense/MatMul/ReadVariableOp:0")]
    nodes += [helper.make_node("Transpose", [h], ["pool_nhwc"], perm=[0, 2, 3, 1], name="Transpose__head"),
              helper.make_node("Reshape", ["pool_nhwc", "const_shape"], ["flatten"]),
              helper.make_node("MatMul", ["flatten", "dense/MatMul/ReadVariableOp:0"], ["predictions"])]
    model = _model(nodes, [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, [1, size, size, 3])],
                   [helper.make_tensor_value_info("predictions", TensorProto.FLOAT, [1, HEAD_CLASSES])],
                   inits, opset=13, ir_version=7)
    onnx.save(model, str(path))
    return path


LAYOUTS = {"ours": ours, "zoo_vgg19_7": zoo_vgg19_7, "zoo_caffe2": zoo_caffe2,
           "torch_legacy": torch_legacy, "torch_dynamo": torch_dynamo, "keras_tf2onnx": keras_tf2onnx}
