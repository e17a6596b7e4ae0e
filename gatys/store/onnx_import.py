"""Import the convolutional part of any VGG-19 ONNX file, recognised by its topology.

Handles our own files, the ONNX Model Zoo's vgg19-7 (MXNet) and vgg19-caffe2-N, torch.onnx
exports (legacy and dynamo, external data), and Keras via tf2onnx (NHWC input behind Transposes,
convolutions without bias, SAME padding). Names are never relied on: the importer walks the main
path from the input, collecting 3x3 convolutions (weights from initializers or Constant nodes,
through Identity and Transpose), ReLUs and 2x2 pools, and stops at the classifier head.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from gatys.errors import WeightsError
from gatys.model.vgg import BLOCKS, CHANNELS, CONV_NAMES, PREPROCESS, VGGWeights, get_preprocess

_PASS_THROUGH = {"Identity", "Dropout"}
_HEAD = {"Flatten", "Reshape", "Gemm", "MatMul", "GlobalAveragePool", "GlobalMaxPool", "Softmax"}
_NHWC_TO_NCHW = [0, 3, 1, 2]
_NCHW_TO_NHWC = [0, 2, 3, 1]
# Pools follow these (1-based) convolutions in VGG-19.
POOL_AFTER = tuple(int(x) for x in np.cumsum(BLOCKS))


@dataclass
class ImportedVGG(VGGWeights):
    """VGG-19 weights plus what was learnt about the file they came from."""

    input_name: str = ""
    input_layout: str = "NCHW"
    # For each conv layer, the ONNX tensor holding its ReLU output and that tensor's layout.
    feature_tensors: dict[str, tuple[str, str]] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Graph:
    def __init__(self, graph: onnx.GraphProto) -> None:
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t)
                                              for t in graph.initializer}
        self.producer = {out: n for n in graph.node for out in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in graph.node:
            for name in n.input:
                self.consumers.setdefault(name, []).append(n)

    def const(self, name: str) -> np.ndarray | None:
        """The value of ``name`` if it is a constant, folding Identity/Transpose/Reshape chains."""
        if name in self.consts:
            return self.consts[name]
        node = self.producer.get(name)
        if node is None:
            return None
        if node.op_type == "Constant":
            a = _attrs(node)
            if "value" in a:
                return numpy_helper.to_array(a["value"])
            for key in ("value_float", "value_floats", "value_int", "value_ints"):
                if key in a:
                    return np.asarray(a[key])
            return None
        if node.op_type in _PASS_THROUGH | {"Cast"}:
            v = self.const(node.input[0])
            return None if v is None else v.astype(np.float32) if node.op_type == "Cast" else v
        if node.op_type == "Transpose":
            v = self.const(node.input[0])
            return None if v is None else np.transpose(v, _attrs(node).get("perm"))
        if node.op_type in ("Reshape", "Squeeze", "Unsqueeze"):
            v = self.const(node.input[0])
            return None if v is None else v.reshape(-1)
        return None


def _load(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.stat().st_size == 0:  # onnx reads an empty file as an empty model, without error
        raise WeightsError(f"{path} is empty (0 bytes), not an ONNX file")
    try:
        return onnx.load(str(path), load_external_data=True)
    except FileNotFoundError as e:
        raise WeightsError(f"{path}: its external data file is missing ({e.filename})") from None
    except Exception as e:
        if "should be stored in" in str(e):  # onnx's wording for missing external data
            raise WeightsError(f"{path}: its external data file is missing or unreadable "
                               f"({str(e).split(' should be stored in ')[-1].split(',')[0]}); keep "
                               "it beside the .onnx file") from None
        raise WeightsError(f"{path} is not a readable ONNX file "
                           f"({type(e).__name__}: {e})") from None


def _check_conv(node: onnx.NodeProto, w: np.ndarray, index: int) -> None:
    a = _attrs(node)
    where = f"convolution {index + 1} ({node.name or node.output[0]})"
    if w.ndim != 4 or w.shape[2:] != (3, 3):
        raise WeightsError(f"not a VGG-19: {where} has weights of shape {w.shape}, not 3x3")
    if a.get("group", 1) != 1 or list(a.get("strides", [1, 1])) != [1, 1] \
            or list(a.get("dilations", [1, 1])) != [1, 1]:
        raise WeightsError(f"not a VGG-19: {where} is grouped, strided or dilated")
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return
    if list(a.get("pads", [0, 0, 0, 0])) != [1, 1, 1, 1]:
        raise WeightsError(f"not a VGG-19: {where} does not pad by 1 on each side")


def _describe(channels: list[int]) -> str:
    return f"{len(channels)} 3x3 convolutions with output channels {','.join(map(str, channels))}"


@dataclass
class _MainPath:
    """What the walk from the input collects: per convolution its weight, bias, whether a ReLU
    follows and the tensor holding that ReLU's output (and its layout); after which
    convolutions the pools come; and the input's layout."""

    weights: list[np.ndarray] = field(default_factory=list)
    biases: list[np.ndarray] = field(default_factory=list)
    relu_after: list[bool] = field(default_factory=list)
    pools: list[int] = field(default_factory=list)
    features: dict[int, tuple[str, str]] = field(default_factory=dict)
    input_layout: str | None = None


def _walk(g: _Graph, path: Path, start: str) -> _MainPath:
    """Follow the main path from the input ``start`` to the classifier head (or the end).

    One loop with a branch per kind of node (longer than most functions here): each branch is
    short, and seeing them side by side is how a reader checks which graphs are accepted."""
    found = _MainPath()
    weights, biases, relu_after, pools, features = (found.weights, found.biases,
                                                    found.relu_after, found.pools, found.features)
    layout: str | None = None  # of the tensor at `current`; None until the input's is known
    input_layout: str | None = None
    current = start
    while True:
        nodes = [n for n in g.consumers.get(current, []) if n.input and n.input[0] == current]
        main = [n for n in nodes if n.op_type not in ("Shape", "Size")]
        if not main:
            break
        node = main[0]
        op = node.op_type
        if op in _HEAD:
            break
        if op in _PASS_THROUGH:
            pass
        elif op == "Transpose":
            perm = list(_attrs(node).get("perm", []))
            if perm == _NHWC_TO_NCHW and layout in (None, "NHWC"):
                input_layout = input_layout or "NHWC"
                layout = "NCHW"
            elif perm == _NCHW_TO_NHWC and layout in (None, "NCHW"):
                input_layout = input_layout or "NCHW"
                layout = "NHWC"
            else:
                raise WeightsError(f"not a VGG-19: unexpected Transpose {perm} on the main path")
        elif op == "Conv":
            if layout == "NHWC":
                raise WeightsError("not a VGG-19: a convolution on an NHWC tensor")
            input_layout = input_layout or "NCHW"
            layout = "NCHW"
            w = g.const(node.input[1]) if len(node.input) > 1 else None
            if w is None:
                raise WeightsError(f"{path}: the weights of convolution {len(weights) + 1} "
                                   "are not constants")
            _check_conv(node, w, len(weights))
            b = g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            weights.append(np.asarray(w, np.float32))
            biases.append(np.zeros(w.shape[0], np.float32) if b is None
                          else np.asarray(b, np.float32).reshape(-1))
            relu_after.append(False)
        elif op == "Add" and weights and not relu_after[-1]:
            b = g.const(node.input[1])
            if b is None or b.size != weights[-1].shape[0]:
                raise WeightsError("not a VGG-19: an addition on the main path that is not a bias")
            biases[-1] = biases[-1] + np.asarray(b, np.float32).reshape(-1)
        elif op == "Relu" and weights and not relu_after[-1]:
            relu_after[-1] = True
            features[len(weights) - 1] = (node.output[0], layout or "NCHW")
        elif op in ("MaxPool", "AveragePool"):
            if pools and pools[-1] == len(weights):
                break  # a pool right after a pool (torchvision's adaptive pool): the head
            a = _attrs(node)
            if (list(a.get("kernel_shape", [])) != [2, 2]
                    or list(a.get("strides", [1, 1])) != [2, 2]):
                raise WeightsError(f"not a VGG-19: a pool that is not 2x2 with stride 2 "
                                   f"after {len(weights)} convolutions")
            pools.append(len(weights))
        else:
            raise WeightsError(f"not a VGG-19: unsupported operation {op} on the main path "
                               f"after {len(weights)} convolutions")
        current = node.output[0]
    found.input_layout = input_layout
    return found


def import_vgg19(path: str | Path, preprocess: str | None = None) -> ImportedVGG:
    """Read the 16 convolutions of a VGG-19 from an ONNX file (or as many of the first ones as
    a file cut short holds).

    ``preprocess`` ("caffe" or "torch") overrides what the file's metadata says or, without
    metadata, what its layout suggests (Caffe2 and Keras files: caffe; others: torch).
    """
    path = Path(path)
    model = _load(path)
    g = _Graph(model.graph)
    inputs = [i.name for i in model.graph.input if i.name not in g.consts]
    if len(inputs) != 1:
        raise WeightsError(f"not a VGG-19: {path} has {len(inputs)} inputs, expected one image")
    found = _walk(g, path, inputs[0])
    weights, biases, relu_after, pools = found.weights, found.biases, found.relu_after, found.pools
    features, input_layout = found.features, found.input_layout
    # The whole VGG-19, or its first layers (a file built with --upto, or an encoder such as
    # AdaIN's that stops at conv4_1), as long as it reaches conv1_1 at least.
    channels = [w.shape[0] for w in weights]
    if not channels or tuple(channels) != CHANNELS[: len(channels)] or weights[0].shape[1] != 3:
        raise WeightsError(f"not a VGG-19: {path} has {_describe(channels)}; VGG-19 has "
                           f"{_describe(list(CHANNELS))} on a 3-channel input")
    if not all(relu_after):
        raise WeightsError(f"not a VGG-19: convolution {relu_after.index(False) + 1} has no ReLU")
    expected = [p for p in POOL_AFTER if p < len(weights)]
    if pools[: len(expected)] != expected or any(p not in POOL_AFTER for p in pools):
        raise WeightsError(f"not a VGG-19: pools follow convolutions {pools}, "
                           f"expected {list(POOL_AFTER)}")
    metadata = {p.key: p.value for p in model.metadata_props}
    names = set(g.consts) | set(g.producer)
    if preprocess:
        chosen, note = preprocess, "chosen by the user"
    elif "gatys.preprocess" in metadata:
        chosen, note = metadata["gatys.preprocess"], "from the file's metadata"
        if chosen not in PREPROCESS:
            raise WeightsError(f"{path}: its metadata names preprocessing {chosen!r}, which gatys "
                               f"does not know ({' or '.join(PREPROCESS)}): choose one with "
                               "--preprocess")
    elif input_layout == "NHWC":
        chosen, note = "caffe", "inferred: NHWC input, as Keras (Caffe preprocessing) exports"
    elif any(n.endswith("_w_0") for n in names):
        chosen, note = "caffe", "inferred: Caffe2 layer names"
    else:
        chosen, note = "torch", "inferred: no metadata, so torchvision's convention is assumed"
    return ImportedVGG(
        weights, biases, get_preprocess(chosen),
        source=metadata.get("gatys.source", str(path)),
        notes=[f"preprocessing {chosen}: {note}"],
        input_name=inputs[0], input_layout=input_layout or "NCHW",
        feature_tensors={CONV_NAMES[i]: v for i, v in features.items()},
        metadata=metadata,
    )
