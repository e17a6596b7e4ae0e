"""Whether a run fits: an image large enough for its deepest layer, and small enough for the
memory of the machine (or of the GPU) it runs on, with the largest size that fits if not."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, cast

from gatys.errors import InputError
from gatys.io.images import fit_shape, source_shape
from gatys.kernels import get_backend
from gatys.model.vgg import CHANNELS, LAYERS
from gatys.run import memory

if TYPE_CHECKING:
    from gatys.kernels.cuda_backend import CudaBackend

MIN_SIDE = 16  # the smallest --size: conv5_1 needs 16 px after its four pools
Advice = Callable[[int], str]  # the largest longest side that fits -> what to tell the user


def size_advice(side: int) -> str:
    return f"use --size {side} or less"


def plan(image: object, what: str, side: int, layers: list[str], history: int,
         device: str = "cpu", runs: int = 1, advice: Advice = size_advice,
         at: str | None = None, threads: int | None = None) -> tuple[int, int]:
    """The shape ``image`` will have at longest side ``side``, from its header alone, checked
    against the layers and the memory before anything is decoded or allocated. ``at`` says
    where the side comes from (default: "at SIDE px"); ``threads``: the CPU's, if not by size."""
    shape = fit_shape(*source_shape(image, what), side)
    check_shape(shape, layers, history, what=f"{what} {at or f'at {side} px'}", runs=runs,
                device=device, advice=advice, threads=threads)
    return shape


def smallest_side(layers: list[str]) -> int:
    """The fewest pixels on each side an image needs to reach the deepest of ``layers``: one
    per position there, after its poolings."""
    deepest = max(layers, key=LAYERS.index)
    return 2 ** sum(1 for n in LAYERS[: LAYERS.index(deepest)] if n.startswith("pool"))


def shape_fits(shape: tuple[int, int], layers: list[str]) -> bool:
    """Whether an image of ``shape`` reaches every one of ``layers``."""
    return min(shape) >= smallest_side(layers)


def check_shape(shape: tuple[int, int], layers: list[str], history: int = 0,
                what: str = "the image", runs: int = 1, device: str = "cpu",
                advice: Advice = size_advice, threads: int | None = None) -> None:
    """The output must be large enough for the deepest layer, and (given ``history``) small
    enough for ``runs`` of it at once to fit in the memory the machine has: on ``device``
    "cuda", the GPU's memory for the network and the host's for L-BFGS; on the CPU with
    ``threads`` threads (default: the engine's for the size)."""
    deepest = max(layers, key=LAYERS.index)
    need = smallest_side(layers)
    if min(shape) < need:
        raise InputError(f"{what} is {shape[1]}x{shape[0]} px, too small for layer "
                         f"{deepest} (needs >= {need} px on each side): use a larger --size")
    if not history:
        return
    if device == "cuda":
        free, _ = cast("CudaBackend", get_backend("cuda")).memory()
        fits(shape, lambda s: runs * memory.estimate_cuda_bytes(s, CHANNELS, layers), free,
             "GPU memory", runs, what, advice)
        host = lambda s: runs * (memory.BASE_BYTES + memory.lbfgs_bytes(s, history))  # noqa: E731
    else:
        host = lambda s: runs * memory.estimate_bytes(  # noqa: E731
            s, CHANNELS, deepest, history, threads=threads)
    available = memory.available_bytes()
    if available is not None:
        fits(shape, host, available, "memory", runs, what, advice)


def fits(shape: tuple[int, int], estimate: Callable[[tuple[int, int]], int], available: int,
         kind: str, runs: int, what: str = "the image", advice: Advice = size_advice) -> None:
    """InputError naming the largest size that fits when ``estimate`` is over 90 % of
    ``available`` (what to change, from ``advice``), or saying that none does."""
    need = estimate(shape)
    if need <= 0.9 * available:
        return
    side = memory.largest_fitting_size(shape, estimate, int(0.9 * available))
    runs_text = "a" if runs == 1 else f"{runs} cells at once at"
    jobs_text = ", or fewer --jobs" if runs > 1 else ""
    todo = (f"{advice(side)} (or a smaller --history{jobs_text})" if side >= MIN_SIDE else
            f"no size fits: free some memory, or use fewer threads (--threads){jobs_text}")
    raise InputError(f"{what}: {runs_text} {shape[1]}x{shape[0]} run needs about "
                     f"{need / 2**30:.1f} GiB of {kind} and {available / 2**30:.1f} GiB is "
                     f"available: {todo}")
