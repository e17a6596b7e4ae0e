"""The Python API: style transfer and the two reconstructions of Fig. 1. Mirrors the CLI."""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np
from PIL import Image

from .kernels import DEVICES, get_backend, resolve_device

from . import __version__, colour, memory, weights as weights_store
from .errors import InputError
from .images import check_output_path, load_image, resize, save_image
from .losses import LossWeights, check_content_scale
from .network import POOLS, Network
from .objective import Objective, content_targets, style_targets
from .optimize import Outcome, Step, run_lbfgs
from .plot import check_plot_path, save_loss_plot
from .vgg import CHANNELS, LAYERS, check_layer

log = logging.getLogger("gatys")

ImageLike = Union[str, os.PathLike, np.ndarray, Image.Image]

DEFAULT_CONTENT_LAYER = "conv4_2"
DEFAULT_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
DEFAULTS = dict(size=512, iterations=500, ratio=1e-3, history=20, pool="avg", init="noise",
                content_scale="per-position", device="auto")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: carries the :class:`Result` reached (already saved if an output
    path was given)."""

    def __init__(self, result: "Result") -> None:
        super().__init__(result.message)
        self.result = result


@dataclass
class Result:
    """A finished run: the image (H, W, 3) float32 in [0, 1], the loss after each iteration and
    the parameters used (also written into PNG outputs)."""

    image: np.ndarray
    history: list[dict[str, float]]
    parameters: dict[str, Any]
    message: str = ""
    output: Path | None = None
    interrupted: bool = False
    seconds: float = 0.0
    # Of ``seconds``, those spent evaluating the loss and its gradient (image to the device and
    # back included); the rest is L-BFGS-B's own work, setup and writing files.
    evaluation_seconds: float = 0.0
    intermediates: list[Path] = field(default_factory=list)


# --- argument checks --------------------------------------------------------------------------

def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _non_negative(name: str, value: Any, strict: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (strict and v == 0):
        raise InputError(f"{name} must be a {'positive' if strict else 'non-negative'} "
                         f"finite number, got {value!r}")
    return v


def _layers(value: str | Sequence[str], what: str) -> list[str]:
    names = [s.strip() for s in value.split(",")] if isinstance(value, str) else list(value)
    names = [n for n in names if n]
    if not names:
        raise InputError(f"{what} is empty: name at least one layer, e.g. conv1_1")
    for n in names:
        check_layer(n)
    if len(set(names)) != len(names):
        raise InputError(f"{what} lists a layer twice: {','.join(names)}")
    return names


def _weights(name: str, value: Sequence[float] | str | None, count: int, what: str,
             default: float = 1.0, normalise: bool = False) -> list[float]:
    """A list of ``count`` non-negative weights, not all 0 (``default`` each when None);
    scaled to sum to 1 if ``normalise``. Accepts "3,7" as well as [3, 7]."""
    if value is None:
        values = [1.0 / count if normalise else default] * count
    else:
        items = value.split(",") if isinstance(value, str) else list(value)
        values = [_non_negative(name, v) for v in items]
        if len(values) != count:
            raise InputError(f"{name} has {len(values)} values but needs {count} ({what})")
        if not any(values):
            raise InputError(f"{name} is all zeros: give at least one positive weight")
    total = sum(values)
    return [v / total for v in values] if normalise else values


def _stage_sizes(size: int, scales: Any, start_size: Any) -> list[int]:
    """Longest sides of the coarse-to-fine stages, ending at ``size``."""
    scales = _positive_int("scales", scales)
    if start_size is not None:
        start = _positive_int("start_size", start_size, 16)
        if start >= size:
            raise InputError(f"start_size {start} must be smaller than size {size}")
        if scales == 1:
            scales = max(2, round(math.log2(size / start)) + 1)
    else:
        start = size / 2 ** (scales - 1)
        if start < 16:
            raise InputError(f"{scales} scales halve size {size} below 16 px: use fewer --scales")
    if scales == 1:
        return [size]
    sizes = [round(start * (size / start) ** (k / (scales - 1))) for k in range(scales)]
    sizes[-1] = size
    return sizes


def _iteration_counts(value: Any) -> list[int]:
    """``iterations``: an integer, or one per stage ("100,40,10" or a list)."""
    if isinstance(value, str):
        try:
            items: list[Any] = [int(v) for v in value.split(",")]
        except ValueError:
            raise InputError(f"iterations must be an integer or integers separated by commas, "
                             f"got {value!r}") from None
    else:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise InputError("iterations is empty")
    return [_positive_int("iterations", v) for v in items]


def _per_stage(iterations: list[int], stages: int) -> list[int]:
    if len(iterations) == 1:
        return iterations * stages
    if len(iterations) != stages:
        raise InputError(f"iterations has {len(iterations)} values but there "
                         f"{'is 1 stage' if stages == 1 else f'are {stages} stages'}: give one "
                         "number, or one per stage")
    return iterations


def _choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")
    return value


def _check_shape(shape: tuple[int, int], layers: list[str], history: int = 0,
                 what: str = "the image", runs: int = 1, device: str = "cpu") -> None:
    """The output must be large enough for the deepest layer, and (given ``history``) small
    enough for ``runs`` of it at once to fit in the memory the machine has: on ``device``
    "cuda", the GPU's memory for the network and the host's for L-BFGS."""
    deepest = Network.deepest(layers)
    pools = sum(1 for n in LAYERS[: LAYERS.index(deepest)] if n.startswith("pool"))
    need = 2 ** pools
    if min(shape) < need:
        raise InputError(f"{what} is {shape[1]}x{shape[0]} px, too small for layer "
                         f"{deepest} (needs >= {need} px on each side): use a larger --size")
    if not history:
        return
    if device == "cuda":
        free, _ = get_backend("cuda").memory()
        _fits(shape, lambda s: runs * memory.estimate_cuda_bytes(s, CHANNELS, layers), free,
              "GPU memory", runs)
        host = lambda s: runs * (memory.BASE_BYTES + memory.lbfgs_bytes(s, history))  # noqa: E731
    else:
        host = lambda s: runs * memory.estimate_bytes(s, CHANNELS, deepest, history)  # noqa: E731
    available = memory.available_bytes()
    if available is not None:
        _fits(shape, host, available, "memory", runs)


def _fits(shape: tuple[int, int], estimate: Callable[[tuple[int, int]], int], available: int,
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


def _read(image: ImageLike, what: str, size: int | None = None,
          shape: tuple[int, int] | None = None) -> np.ndarray:
    """A path, PIL image or array (H, W, 3 in [0, 1] or uint8) as (3, H, W) float32."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, size=size, shape=shape)
    if isinstance(image, Image.Image):
        a = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    else:
        a = np.asarray(image)
        if a.ndim != 3 or a.shape[2] != 3:
            raise InputError(f"the {what} array must have shape (H, W, 3), got {a.shape}")
        a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    return resize(np.clip(a, 0, 1).transpose(2, 0, 1), size=size, shape=shape)


# --- shared machinery -------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def _network(path: str, modified: float, preprocess: str | None, pool: str,
             device: str, tf32: bool) -> Network:
    vgg = weights_store.load(path, preprocess)
    return Network(vgg, get_backend(device, tf32), pool=pool)


def check_device(device: str, tf32: bool = False) -> str:
    """The device a run uses: ``device`` checked, ``auto`` resolved (CUDA where CuPy sees a GPU
    and can build our kernels, else the CPU), and ``tf32`` allowed only on CUDA."""
    device = resolve_device(_choice("device", device, DEVICES))
    if tf32 and device != "cuda":
        raise InputError("--tf32 is a mode of CUDA's tensor cores: use it with --device cuda")
    get_backend(device, tf32)  # DeviceUnavailable now, before any work, if CuPy or a GPU is missing
    return device


def load_network(weights: str | os.PathLike | None = None, preprocess: str | None = None,
                 pool: str = "avg", device: str = "auto", tf32: bool = False) -> Network:
    """The VGG-19 feature network (cached per process): our built weights unless ``weights``
    names an ONNX file, on ``device`` (cpu, cuda or auto; ``tf32``: see :func:`check_device`)."""
    _choice("pool", pool, POOLS)
    device = check_device(device, tf32)
    if preprocess is not None:
        _choice("preprocess", preprocess, ("caffe", "torch"))
    path = weights_store.ensure(weights, announce=log.warning)
    return _network(str(path.resolve()), path.stat().st_mtime, preprocess, pool, device, tf32)


def _initial_image(init: ImageLike, shape: tuple[int, int], seed: int,
                   named: dict[str, np.ndarray]) -> np.ndarray:
    if isinstance(init, str) and init == "noise":
        # White noise, as in the paper: each pixel uniform in the valid range.
        return np.random.default_rng(seed).random((3, *shape), dtype=np.float32)
    if isinstance(init, str) and init in named:
        return resize(named[init], shape=shape)
    if isinstance(init, str) and init in ("content", "style"):
        raise InputError(f"init {init!r} does not apply here: use noise, "
                         f"{', '.join(named)} or an image file")
    return _read(init, "init", shape=shape)


@dataclass
class _Run:
    """The checked options every command shares."""

    size: int
    iterations: list[int]  # one number, or one per coarse-to-fine stage
    history: int
    pool: str
    device: str
    tf32: bool
    init: ImageLike
    seed: int | None
    save_every: int | None
    output: Path | None
    progress: bool
    callback: Callable[[Step, np.ndarray], Any] | None
    plot: Path | None = None

    @classmethod
    def check(cls, size: Any, iterations: Any, history: Any, pool: str, device: str,
              tf32: bool, init: ImageLike, seed: Any, save_every: Any, output: Any,
              progress: bool, callback: Any, plot: Any = None) -> "_Run":
        size = _positive_int("size", size, 16)
        iterations = _iteration_counts(iterations)
        history = _positive_int("history", history)
        _choice("pool", pool, POOLS)
        device = check_device(device, tf32)
        if seed is not None:
            seed = _positive_int("seed", seed, 0)
        if isinstance(init, str) and init not in ("noise", "content", "style") \
                and not os.path.exists(init):
            raise InputError(f"unknown init {init!r}: use noise, content, style or an image file"
                             if "." not in os.path.basename(init) else f"image not found: {init}")
        out = check_output_path(output) if output is not None else None
        if save_every is not None:
            save_every = _positive_int("save_every", save_every)
            if out is None:
                raise InputError("save_every needs an output path to number the images after")
        if plot is not None:
            plot = check_plot_path(plot)
        return cls(size, iterations, history, pool, device, tf32, init, seed, save_every, out,
                   progress, callback, plot)


@dataclass
class _Stage:
    """One optimisation at one size: the objective, the images "init" may name, and the map
    from the optimised image to the one the user gets."""

    shape: tuple[int, int]
    objective: Objective
    named_images: dict[str, np.ndarray]
    finish: Callable[[np.ndarray], np.ndarray] = lambda x: x


def _synthesize(kind: str, run: _Run, stages: list[_Stage], parameters: dict[str, Any]) -> Result:
    """Optimise each stage in turn: the first from ``run.init``, each later one from the previous
    result upscaled to its size (coarse to fine). Iterations are numbered across stages."""
    network = stages[-1].objective.network
    seed = secrets.randbelow(2**32) if run.seed is None else run.seed
    counts = _per_stage(run.iterations, len(stages))
    parameters = {"command": kind, **parameters, "size": run.size,
                  "iterations": counts[0] if len(run.iterations) == 1
                  else ",".join(map(str, counts)),
                  "pool": run.pool, "init": _describe_source(run.init), "history": run.history,
                  "weights": network.source, "preprocess": network.preprocess.name,
                  "device": run.device, **({"tf32": True} if run.tf32 else {}), "seed": seed,
                  "software": f"gatys {__version__}"}
    intermediates: list[Path] = []
    history: list[dict[str, float]] = []
    output = run.output
    start = time.perf_counter()
    evaluation_seconds = 0.0
    x = _initial_image(run.init, stages[0].shape, seed, stages[0].named_images)
    for number, stage in enumerate(stages, 1):
        if number > 1:
            x = resize(x, shape=stage.shape)
        done = len(history)

        def on_step(step: Step, x: np.ndarray, stage: _Stage = stage, done: int = done,
                    number: int = number) -> None:
            step = dataclasses.replace(step, iteration=done + step.iteration)
            history.append({**step.as_dict(), "stage": number, "height": stage.shape[0],
                            "width": stage.shape[1]})
            if output is not None and run.save_every and step.iteration % run.save_every == 0:
                path = output.with_name(f"{output.stem}_{step.iteration:05d}{output.suffix}")
                intermediates.append(save_image(path, stage.finish(x), png_text(parameters, step)))
            if run.callback is not None:
                run.callback(step, stage.finish(x).transpose(1, 2, 0))

        label = kind if len(stages) == 1 else f"{kind} {stage.shape[1]}x{stage.shape[0]}"
        outcome: Outcome = run_lbfgs(stage.objective, network.backend, x, counts[number - 1],
                                     run.history, progress=run.progress, on_step=on_step,
                                     description=label)
        x = outcome.x
        evaluation_seconds += outcome.evaluation_seconds
        if outcome.interrupted:
            break
    image = stage.finish(x)
    result = Result(image.transpose(1, 2, 0).copy(), history, parameters, outcome.message,
                    interrupted=outcome.interrupted, seconds=time.perf_counter() - start,
                    evaluation_seconds=evaluation_seconds, intermediates=intermediates)
    if output is not None:
        last = history[-1] if history else None
        result.output = save_image(output, image, png_text(parameters, last))
    if run.plot is not None and history:
        save_loss_plot(run.plot, [(_plot_title(kind, parameters), history)])
    if outcome.interrupted:
        raise Interrupted(result)
    return result


def _plot_title(kind: str, parameters: dict[str, Any]) -> str:
    if kind == "transfer":
        r = parameters["ratio"]
        return f"transfer, alpha/beta {r:g}" if isinstance(r, float) else "transfer"
    return f"{kind} from {parameters.get('layer') or parameters['layers']}"


def png_text(parameters: dict[str, Any], step: Step | dict[str, Any] | None) -> dict[str, str]:
    """A run's parameters (and its losses after ``step``) as PNG text chunks."""
    text = {"Software": parameters["software"]}
    text.update({f"gatys:{k}": str(v) for k, v in parameters.items() if k != "software"})
    if step is not None:
        step = step if isinstance(step, dict) else step.as_dict()
        text.update({"gatys:iterations_done": str(step["iteration"]),
                     "gatys:final_content_loss": f"{step['content']:.6g}",
                     "gatys:final_style_loss": f"{step['style']:.6g}"})
    return text


def _describe_source(image: ImageLike) -> str:
    return str(image) if isinstance(image, (str, os.PathLike)) else f"<{type(image).__name__}>"


# --- public functions -------------------------------------------------------------------------

def transfer(content: ImageLike, style: ImageLike | Sequence[ImageLike],
             output: str | os.PathLike | None = None, *,
             size: int = DEFAULTS["size"],
             iterations: int | Sequence[int] | str = DEFAULTS["iterations"],
             ratio: float | None = None, content_weight: float | None = None,
             style_weight: float | None = None, content_layer: str = DEFAULT_CONTENT_LAYER,
             content_layer_weights: Sequence[float] | str | None = None,
             style_layers: str | Sequence[str] = DEFAULT_STYLE_LAYERS,
             style_layer_weights: Sequence[float] | str | None = None,
             style_blend: Sequence[float] | str | None = None, style_scale: float = 1.0,
             tv_weight: float = 0.0, preserve_colors: str | None = None,
             scales: int = 1, start_size: int | None = None,
             pool: str = DEFAULTS["pool"], init: ImageLike = DEFAULTS["init"],
             seed: int | None = None, history: int = DEFAULTS["history"],
             save_every: int | None = None, weights: str | os.PathLike | None = None,
             preprocess: str | None = None, device: str = DEFAULTS["device"],
             tf32: bool = False,
             content_scale: str = DEFAULTS["content_scale"], progress: bool = False,
             callback: Callable[[Step, np.ndarray], Any] | None = None,
             plot: str | os.PathLike | None = None) -> Result:
    """Render ``content`` in the style of ``style`` (the paper's Fig. 2).

    ``ratio`` is alpha/beta (default 1e-3, the paper's value for Fig. 2 B-D); or give
    ``content_weight`` (alpha) and ``style_weight`` (beta) instead. Style layers share w_l =
    1/L unless ``style_layer_weights`` gives one w_l per layer; content layers weigh 1 each
    unless ``content_layer_weights`` says otherwise. ``style`` may be several paintings: their
    Gram targets are mixed with ``style_blend`` (normalised to sum to 1; default equal).
    ``style_scale`` sizes the paintings relative to the output (> 1: larger strokes).
    ``tv_weight`` adds a total-variation smoothness term (not in the paper).
    ``preserve_colors`` keeps the photograph's colours (Gatys et al. 2016): "luminance" transfers
    on luminance and recombines with the photo's chroma (YIQ); "histogram" first moves the
    paintings' colour mean and covariance to the photo's. ``scales`` > 1 (or ``start_size``)
    optimises coarse to fine: sizes grow geometrically from ``start_size`` (default
    size / 2^(scales-1)) to ``size``, each stage running ``iterations`` (one number, or one per
    stage) from the previous result
    upscaled. ``init`` is "noise"
    (the paper), "content", "style" (the first painting) or an image. ``callback(step, x)`` is
    called after each iteration with the current image (H, W, 3). The result is written to
    ``output`` (atomically; PNGs carry the parameters) if given, and every ``save_every``
    iterations to numbered files beside it; ``plot`` names a PNG/PDF/SVG for the loss curves
    (needs matplotlib). ``device`` is "cpu", "cuda" or "auto" (CUDA where available, the
    default); ``tf32`` lets CUDA's tensor cores run the float32 products in TF32. Ctrl-C raises
    :class:`Interrupted` after saving.
    """
    run = _Run.check(size, iterations, history, pool, device, tf32, init, seed, save_every,
                     output, progress, callback, plot)
    if ratio is not None and (content_weight is not None or style_weight is not None):
        raise InputError("give either ratio or content_weight/style_weight, not both")
    if ratio is None and content_weight is None and style_weight is None:
        ratio = DEFAULTS["ratio"]
    if ratio is not None:
        alpha, beta = _non_negative("ratio", ratio, strict=True), 1.0
    else:
        alpha = _non_negative("content_weight", 1.0 if content_weight is None else content_weight)
        beta = _non_negative("style_weight", 1.0 if style_weight is None else style_weight)
        if alpha == 0 and beta == 0:
            raise InputError("content_weight and style_weight are both 0: nothing to optimise")
    paintings = list(style) if isinstance(style, (list, tuple)) else [style]
    if not paintings:
        raise InputError("no style image given: name at least one painting")
    blend = _weights("style_blend", style_blend, len(paintings), "one per style image",
                     normalise=True)
    content_layers = _layers(content_layer, "content_layer")
    content_w = _weights("content_layer_weights", content_layer_weights, len(content_layers),
                         "one per content layer", default=1.0)
    styles = _layers(style_layers, "style_layers")
    style_w = _weights("style_layer_weights", style_layer_weights, len(styles),
                       "one per style layer", default=1.0 / len(styles))
    style_scale = _non_negative("style_scale", style_scale, strict=True)
    tv = _non_negative("tv_weight", tv_weight)
    colour.check_mode(preserve_colors)
    check_content_scale(content_scale)
    sizes = _stage_sizes(run.size, scales, start_size)
    _per_stage(run.iterations, len(sizes))  # before any work
    c = _read(content, "content", size=run.size)
    _check_shape(c.shape[1:], content_layers + styles, run.history, device=run.device)
    arts = [_read(p, "style", size=max(1, round(run.size * style_scale))) for p in paintings]
    photo = c
    if preserve_colors == "histogram":
        arts = [colour.match_colours(art, c) for art in arts]
    elif preserve_colors == "luminance":
        arts = [colour.luminance_matched(art, c) for art in arts]
        c = colour.luminance_image(c)
    network = load_network(weights, preprocess, pool, run.device, run.tf32)
    w = LossWeights(alpha, beta, dict(zip(content_layers, content_w)), dict(zip(styles, style_w)),
                    tv=tv)
    stages = []
    for side in sizes:
        c_k = resize(c, size=side)
        shape = c_k.shape[1:]
        _check_shape(shape, content_layers + styles, what=f"the content at {side} px")
        arts_k = [resize(art, size=max(1, round(side * style_scale))) for art in arts]
        for i, art in enumerate(arts_k):
            _check_shape(art.shape[1:], styles, what=f"style image {i + 1} at {side} px and "
                                                     f"style scale {style_scale:g}")
        P = content_targets(network, network.backend.asarray(c_k), content_layers)
        A: dict[str, Any] = {}
        for b, art in zip(blend, arts_k):  # the blend of the paintings' per-position Grams
            for name, target in style_targets(network, network.backend.asarray(art), styles).items():
                A[name] = A[name] + b * target if name in A else b * target
        finish = (functools.partial(colour.recombine, content=resize(photo, shape=shape))
                  if preserve_colors == "luminance" else (lambda x: x))
        stages.append(_Stage(shape, Objective(network, w, P, A, content_scale),
                             {"content": c_k, "style": arts_k[0]}, finish))
    parameters = {"content": _describe_source(content),
                  "style": ";".join(_describe_source(p) for p in paintings),
                  "alpha": alpha, "beta": beta, "ratio": alpha / beta if beta else "inf",
                  "content_layer": ",".join(content_layers),
                  "content_layer_weights": ",".join(f"{v:g}" for v in content_w),
                  "style_layers": ",".join(styles),
                  "style_layer_weights": ",".join(f"{v:g}" for v in style_w),
                  "style_blend": ",".join(f"{v:g}" for v in blend), "style_scale": style_scale,
                  "tv_weight": tv, "preserve_colors": preserve_colors or "no",
                  "scales": ",".join(map(str, sizes)), "content_scale": content_scale}
    return _synthesize("transfer", run, stages, parameters)


def reconstruct_content(image: ImageLike, layer: str = "conv4_1",
                        output: str | os.PathLike | None = None, *,
                        size: int = DEFAULTS["size"], iterations: int = DEFAULTS["iterations"],
                        pool: str = DEFAULTS["pool"], init: ImageLike = DEFAULTS["init"],
                        seed: int | None = None, history: int = DEFAULTS["history"],
                        save_every: int | None = None, weights: str | os.PathLike | None = None,
                        preprocess: str | None = None, device: str = DEFAULTS["device"],
                        tf32: bool = False,
                        progress: bool = False,
                        callback: Callable[[Step, np.ndarray], Any] | None = None,
                        plot: str | os.PathLike | None = None) -> Result:
    """Find an image whose ``layer`` features match those of ``image`` (Fig. 1, top row),
    starting from white noise: the content term alone (eq. 1)."""
    run = _Run.check(size, iterations, history, pool, device, tf32, init, seed, save_every,
                     output, progress, callback, plot)
    layers = _layers(layer, "layer")
    x = _read(image, "image", size=run.size)
    _check_shape(x.shape[1:], layers, run.history, device=run.device)
    network = load_network(weights, preprocess, pool, run.device, run.tf32)
    P = content_targets(network, network.backend.asarray(x), layers)
    w = LossWeights(1.0, 0.0, {n: 1.0 for n in layers}, {})
    parameters = {"image": _describe_source(image), "layer": ",".join(layers)}
    stage = _Stage(x.shape[1:], Objective(network, w, P, {}), {"content": x})
    return _synthesize("reconstruct content", run, [stage], parameters)


def reconstruct_style(image: ImageLike, layers: str | Sequence[str] = DEFAULT_STYLE_LAYERS,
                      output: str | os.PathLike | None = None, *,
                      size: int = DEFAULTS["size"], iterations: int = DEFAULTS["iterations"],
                      pool: str = DEFAULTS["pool"], init: ImageLike = DEFAULTS["init"],
                      seed: int | None = None, history: int = DEFAULTS["history"],
                      save_every: int | None = None, weights: str | os.PathLike | None = None,
                      preprocess: str | None = None, device: str = DEFAULTS["device"],
                      tf32: bool = False,
                      progress: bool = False,
                      callback: Callable[[Step, np.ndarray], Any] | None = None,
                      plot: str | os.PathLike | None = None) -> Result:
    """Synthesise a texture whose Gram matrices on ``layers`` match those of ``image`` (Fig. 1,
    bottom row), from white noise: the style term alone (eq. 5, w_l = 1/L)."""
    run = _Run.check(size, iterations, history, pool, device, tf32, init, seed, save_every,
                     output, progress, callback, plot)
    names = _layers(layers, "layers")
    x = _read(image, "image", size=run.size)
    _check_shape(x.shape[1:], names, run.history, device=run.device)
    network = load_network(weights, preprocess, pool, run.device, run.tf32)
    A = style_targets(network, network.backend.asarray(x), names)
    w = LossWeights(0.0, 1.0, {}, {n: 1.0 / len(names) for n in names})
    parameters = {"image": _describe_source(image), "layers": ",".join(names)}
    stage = _Stage(x.shape[1:], Objective(network, w, {}, A), {"style": x})
    return _synthesize("reconstruct style", run, [stage], parameters)
