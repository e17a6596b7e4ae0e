"""The network a run computes with: its device checked (``auto`` resolved), its weights found
and loaded once per process."""
from __future__ import annotations

import functools
import logging
import os

from gatys.errors import InputError
from gatys.kernels import DEVICES, get_backend, resolve_device
from gatys.model.network import POOLS, Network
from gatys.model.vgg import PREPROCESS
from gatys.run.checks import choice
from gatys.store import weights as weights_store

log = logging.getLogger("gatys")


@functools.lru_cache(maxsize=2)
def _network(path: str, modified: float, preprocess: str | None, pool: str,
             device: str, tf32: bool, cuda_graphs: bool) -> Network:
    vgg = weights_store.load(path, preprocess)
    return Network(vgg, get_backend(device, tf32, cuda_graphs), pool=pool)


def check_device(device: str, tf32: bool = False, cuda_graphs: bool = False) -> str:
    """The device a run uses: ``device`` checked, ``auto`` resolved (CUDA where CuPy sees a GPU
    and can build our kernels, else the CPU), and ``tf32`` and ``cuda_graphs`` allowed only on
    CUDA."""
    device = resolve_device(choice("device", device, DEVICES))
    if tf32 and device != "cuda":
        raise InputError("--tf32 is a mode of CUDA's tensor cores: use it with --device cuda")
    if cuda_graphs and device != "cuda":
        raise InputError("--cuda-graphs records evaluations on a GPU: use it with --device cuda")
    # DeviceUnavailable now, before any work, if CuPy or a GPU is missing
    get_backend(device, tf32, cuda_graphs)
    return device


def load_network(weights: str | os.PathLike | None = None, preprocess: str | None = None,
                 pool: str = "avg", device: str = "auto", tf32: bool = False,
                 cuda_graphs: bool = False) -> Network:
    """The VGG-19 feature network (cached per process): our built weights unless ``weights``
    names an ONNX file, on ``device`` (cpu, cuda or auto; ``tf32`` and ``cuda_graphs``: see
    :func:`check_device`)."""
    choice("pool", pool, POOLS)
    device = check_device(device, tf32, cuda_graphs)
    if preprocess is not None:
        choice("preprocess", preprocess, tuple(PREPROCESS))
    path = weights_store.ensure(weights, announce=log.warning)
    return _network(str(path.resolve()), path.stat().st_mtime, preprocess, pool, device, tf32,
                    cuda_graphs)
