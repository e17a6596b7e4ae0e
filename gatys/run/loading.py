"""The network a run computes with: its device checked (``auto`` resolved), its weights found
and loaded once per process."""
from __future__ import annotations

import functools
import logging
import os
from typing import Any

from gatys.errors import InputError
from gatys.kernels import DEVICES, get_backend, resolve_device
from gatys.kernels.workers import cpus
from gatys.model.network import POOLS, Network
from gatys.model.vgg import PREPROCESS
from gatys.run.checks import choice
from gatys.store import weights as weights_store

log = logging.getLogger("gatys")


@functools.lru_cache(maxsize=2)
def _network(path: str, modified: float, preprocess: str | None, pool: str,
             device: str, tf32: bool, cuda_graphs: bool, threads: int | None) -> Network:
    vgg = weights_store.load(path, preprocess)
    return Network(vgg, get_backend(device, tf32, cuda_graphs, threads), pool=pool)


def check_device(device: str, tf32: bool = False, cuda_graphs: bool = False,
                 threads: int | None = None) -> str:
    """The device a run uses: ``device`` checked, ``auto`` resolved (CUDA where CuPy sees a GPU
    and can build our kernels, else the CPU), ``tf32`` and ``cuda_graphs`` allowed only on
    CUDA, and ``threads`` only on the CPU, from 1 up to the CPUs this process may run on."""
    device = resolve_device(choice("device", device, DEVICES))
    if tf32 and device != "cuda":
        raise InputError("--tf32 is a mode of CUDA's tensor cores: use it with --device cuda")
    if cuda_graphs and device != "cuda":
        raise InputError("--cuda-graphs records evaluations on a GPU: use it with --device cuda")
    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads must be 1 or more, got {threads}")
        if device != "cpu":
            raise InputError(f"--threads sets the CPU engine's threads, and this run is on "
                             f"{device}: use it with --device cpu")
        if threads > cpus():
            raise InputError(f"--threads {threads}: this process may run on {cpus()} CPUs: ask "
                             f"for {cpus()} threads at most")
    # DeviceUnavailable now, before any work, if CuPy or a GPU is missing
    get_backend(device, tf32, cuda_graphs, threads)
    return device


def load_network(weights: str | os.PathLike | None = None, preprocess: str | None = None,
                 pool: str = "avg", device: str = "auto", tf32: bool = False,
                 cuda_graphs: bool = False, threads: int | None = None) -> Network:
    """The VGG-19 feature network (cached per process): our built weights unless ``weights``
    names an ONNX file, on ``device`` (cpu, cuda or auto; ``tf32``, ``cuda_graphs`` and
    ``threads``: see :func:`check_device`)."""
    choice("pool", pool, POOLS)
    device = check_device(device, tf32, cuda_graphs, threads)
    if preprocess is not None:
        choice("preprocess", preprocess, tuple(PREPROCESS))
    path = weights_store.ensure(weights, announce=log.warning)
    return _network(str(path.resolve()), path.stat().st_mtime, preprocess, pool, device, tf32,
                    cuda_graphs, threads)


def device_of(o: Any) -> str:
    """:func:`check_device` of a run's device options (``device``, ``tf32``, ``cuda_graphs``,
    ``threads``: ``gatys.run.options.DeviceOptions``)."""
    return check_device(o.device, o.tf32, o.cuda_graphs, o.threads)


def network_of(o: Any, device: str) -> Network:
    """:func:`load_network` of a run's network options (``gatys.run.options.NetworkOptions``) on
    ``device``, already checked (:func:`device_of`)."""
    return load_network(o.weights, o.preprocess, o.pool, device, o.tf32, o.cuda_graphs, o.threads)
