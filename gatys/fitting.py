"""Whether a run fits: an image large enough for its deepest layer, and small enough for the
memory of the machine (or of the GPU) it runs on, with the largest size that fits if not."""
from __future__ import annotations

from typing import Callable

from . import memory
from .errors import InputError
from .kernels import get_backend
from .vgg import CHANNELS, LAYERS


def check_shape(shape: tuple[int, int], layers: list[str], history: int = 0,
                 what: str = "the image", runs: int = 1, device: str = "cpu") -> None:
    """The output must be large enough for the deepest layer, and (given ``history``) small
    enough for ``runs`` of it at once to fit in the memory the machine has: on ``device``
    "cuda", the GPU's memory for the network and the host's for L-BFGS."""
    deepest = max(layers, key=LAYERS.index)
    pools = sum(1 for n in LAYERS[: LAYERS.index(deepest)] if n.startswith("pool"))
    need = 2 ** pools
    if min(shape) < need:
        raise InputError(f"{what} is {shape[1]}x{shape[0]} px, too small for layer "
                         f"{deepest} (needs >= {need} px on each side): use a larger --size")
    if not history:
        return
    if device == "cuda":
        free, _ = get_backend("cuda").memory()
        fits(shape, lambda s: runs * memory.estimate_cuda_bytes(s, CHANNELS, layers), free,
              "GPU memory", runs)
        host = lambda s: runs * (memory.BASE_BYTES + memory.lbfgs_bytes(s, history))  # noqa: E731
    else:
        host = lambda s: runs * memory.estimate_bytes(s, CHANNELS, deepest, history)  # noqa: E731
    available = memory.available_bytes()
    if available is not None:
        fits(shape, host, available, "memory", runs)


def fits(shape: tuple[int, int], estimate: Callable[[tuple[int, int]], int], available: int,
          what: str, runs: int) -> None:
    """InputError naming the largest size that fits when ``estimate`` is over 90 % of
    ``available``."""
    need = estimate(shape)
    if need <= 0.9 * available:
        return
    fits = memory.largest_fitting_size(shape, estimate, int(0.9 * available))
    runs_text = "a" if runs == 1 else f"{runs} cells at once at"
    jobs_text = ", or fewer --jobs" if runs > 1 else ""
    raise InputError(f"{runs_text} {shape[1]}x{shape[0]} run needs about {need / 2**30:.1f} GiB "
                     f"of {what} and {available / 2**30:.1f} GiB is available: use --size "
                     f"{fits} or less (or a smaller --history{jobs_text})")
