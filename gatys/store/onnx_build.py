"""Write a VGG-19 feature network (16 convolutions with ReLUs, 5 pools) as an ONNX model."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from gatys.model.vgg import CONV_NAMES, LAYERS, VGGWeights, walk

FORMAT = "gatys-vgg19-features/1"
OPSET = 13
IR_VERSION = 8


def build_model(vgg: VGGWeights, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """The ONNX model of ``vgg``: input ``image`` (1, 3, H, W) already preprocessed, nodes
    conv1_1 ... conv5_4 (tensor ``convX_Y`` is the ReLU output), relu*, pool1 ... pool5 (2x2 max
    pools, as in the original network); a ``vgg`` with fewer convolutions gives the network up
    to its last one. The preprocessing is recorded in ``metadata_props``."""
    nodes, inits = [], []
    h = "image"
    whole = len(vgg.weights) == len(CONV_NAMES)
    for name, conv in walk(LAYERS[-1] if whole else vgg.last_layer):
        if conv is not None:
            w, b = vgg.weights[conv], vgg.biases[conv]
            inits += [numpy_helper.from_array(np.asarray(w, np.float32), f"{name}.weight"),
                      numpy_helper.from_array(np.asarray(b, np.float32), f"{name}.bias")]
            nodes.append(helper.make_node("Conv", [h, f"{name}.weight", f"{name}.bias"],
                                          [f"{name}.linear"], name=name, kernel_shape=[3, 3],
                                          pads=[1, 1, 1, 1], strides=[1, 1]))
            nodes.append(helper.make_node("Relu", [f"{name}.linear"], [name],
                                          name=name.replace("conv", "relu")))
        else:
            nodes.append(helper.make_node("MaxPool", [h], [name], name=name,
                                          kernel_shape=[2, 2], strides=[2, 2]))
        h = name
    graph = helper.make_graph(
        nodes, "vgg19_features",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info(h, TensorProto.FLOAT,
                                       [1, vgg.weights[-1].shape[0], None, None])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="gatys", doc_string=(
                                  "VGG-19 convolutional layers for neural style transfer. Input: "
                                  "an image preprocessed as metadata_props gatys.preprocess says."))
    model.ir_version = IR_VERSION
    pre = vgg.preprocess
    props = {
        "gatys.format": FORMAT,
        "gatys.preprocess": pre.name,
        "gatys.preprocess.description": pre.description,
        "gatys.source": vgg.source,
        **(metadata or {}),
    }
    helper.set_model_props(model, props)
    return model
