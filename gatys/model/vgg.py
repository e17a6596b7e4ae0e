"""VGG-19's layer names and the weights and preprocessing that define one instance of it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np

from gatys.errors import InputError

# Convolutions per block of VGG-19; a 2x2 pool follows each block.
BLOCKS = (2, 2, 4, 4, 4)
CHANNELS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)

CONV_NAMES = tuple(f"conv{b + 1}_{i + 1}" for b, n in enumerate(BLOCKS) for i in range(n))
# The network in order; a conv name stands for its ReLU output, as in the paper.
LAYERS = tuple(
    name
    for b, n in enumerate(BLOCKS)
    for name in (*(f"conv{b + 1}_{i + 1}" for i in range(n)), f"pool{b + 1}")
)


def walk(upto: str = LAYERS[-1]) -> Iterator[tuple[str, int | None]]:
    """VGG-19 in order through ``upto``: (name, index of the convolution) for a conv layer,
    (name, None) for a 2x2 pool. The network, the ONNX writer, the shape walk below and the
    bench's PyTorch peer all follow this one walk."""
    conv = 0
    for name in LAYERS[: LAYERS.index(upto) + 1]:
        if name.startswith("conv"):
            yield name, conv
            conv += 1
        else:
            yield name, None


def layer_shapes(shape: tuple[int, int], channels: Sequence[int],
                 upto: str) -> Iterator[tuple[str, int, int, int, int]]:
    """(name, C_in, C_out, H, W) of every layer up to ``upto`` of a network with ``channels``
    on an RGB input of ``shape`` = (H, W); H and W are the layer's output size (pools halve it,
    rounding down)."""
    h, w = shape
    c_in = 3
    for name, conv in walk(upto):
        if conv is not None:
            c_out = channels[conv]
        else:
            c_out, h, w = c_in, h // 2, w // 2
        yield name, c_in, c_out, h, w
        c_in = c_out


def check_reaches(layer: str, last_layer: str) -> None:
    """InputError unless a network ending at ``last_layer`` reaches ``layer`` (a file cut short
    may not)."""
    if LAYERS.index(layer) > LAYERS.index(last_layer):
        raise InputError(f"layer {layer} is beyond the end of these weights, which stop at "
                         f"{last_layer} (built with --upto): use layers up to {last_layer}, or a "
                         "whole VGG-19 file (gatys weights build)")


def check_layer(name: str) -> str:
    """Return ``name`` if it is a layer a loss can use (a conv layer), else raise InputError."""
    if name not in CONV_NAMES:
        raise InputError(
            f"unknown layer {name!r}: use one of conv1_1 ... conv5_4 "
            f"({', '.join(CONV_NAMES)})"
        )
    return name


@dataclass(frozen=True)
class Preprocess:
    """Per-channel affine map from an RGB image in [0, 1] to the network's input.

    ``net[c] = scale[c] * rgb[order[c]] + shift[c]``.
    """

    name: str
    order: tuple[int, int, int]
    scale: tuple[float, float, float]
    shift: tuple[float, float, float]
    description: str


CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)



def _three(values: Iterable[float]) -> tuple[float, float, float]:
    """One value per colour channel."""
    r, g, b = values
    return r, g, b


PREPROCESS = {
    "caffe": Preprocess(
        "caffe", (2, 1, 0), (255.0, 255.0, 255.0), _three(-m for m in CAFFE_MEAN_BGR),
        "Caffe/Oxford: BGR, 0-255, minus mean pixel (B, G, R) = "
        + ", ".join(str(m) for m in CAFFE_MEAN_BGR),
    ),
    "torch": Preprocess(
        "torch", (0, 1, 2), _three(1.0 / s for s in TORCH_STD),
        _three(-m / s for m, s in zip(TORCH_MEAN, TORCH_STD)),
        f"torchvision: RGB in [0, 1], mean {TORCH_MEAN}, std {TORCH_STD}",
    ),
}


def get_preprocess(name: str) -> Preprocess:
    try:
        return PREPROCESS[name]
    except KeyError:
        raise InputError(f"unknown preprocessing {name!r}: choose caffe or torch") from None


@dataclass
class VGGWeights:
    """The 16 convolutions of a VGG-19 (OIHW float32 weights, biases) and its preprocessing."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    preprocess: Preprocess
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(w.shape[0] for w in self.weights)

    @property
    def last_layer(self) -> str:
        """The deepest conv layer these weights reach (conv5_4 for a whole VGG-19)."""
        return CONV_NAMES[len(self.weights) - 1]

    def upto(self, layer: str) -> "VGGWeights":
        """The same network cut after conv layer ``layer`` (what a file of ``gatys weights build
        --upto`` holds)."""
        keep = CONV_NAMES.index(check_layer(layer)) + 1
        if keep > len(self.weights):
            raise InputError(f"these weights end at {self.last_layer}, before {layer}")
        return VGGWeights(self.weights[:keep], self.biases[:keep], self.preprocess, self.source,
                          list(self.notes))

