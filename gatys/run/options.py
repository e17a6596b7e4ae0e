"""Every option of every command, declared once: name, default, help, how the command line
spells and parses it, and how the API checks it.

The Python API's keywords and defaults, argparse's options and the checks are all derived from
these dataclasses (by :mod:`gatys.run.declarations`), so adding an option is one declaration
here plus the code that uses it. ``tests/test_options.py`` holds the API and the CLI to the same
names and defaults.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from gatys.errors import InputError
from gatys.kernels import DEVICES
from gatys.model import colour
from gatys.model.losses import CONTENT_SCALES
from gatys.model.network import POOLS
from gatys.model.objective import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS
from gatys.model.vgg import PREPROCESS
from gatys.run import checks
from gatys.run.declarations import (
    FLOAT,
    INT,
    INT_LIST,
    choice_check,
    int_check,
    number_check,
    option,
    redeclared,
)
from gatys.run.regions import regions_option

# --- the declarations ---------------------------------------------------------------------------

INITS = ("noise", "uniform", "content", "style")
# The default amplitude of the noise start, in pixel units ([0, 1]): chosen by the grain measure
# of bench/artefacts.py (docs/artefacts.md).
NOISE_STD = 1 / 255


def _init(name: str, v: Any) -> Any:
    if v is None:
        raise InputError(f"{name} must be noise, uniform, content, style or an image file, got "
                         "None")
    return _init_or_default(name, v)


def _init_or_default(name: str, v: Any) -> Any:
    if isinstance(v, str) and v not in INITS and not os.path.exists(v):
        raise InputError(f"unknown init {v!r}: use noise, uniform, content, style or an image file"
                         if "." not in os.path.basename(v) else f"image not found: {v}")
    return v


def _noise_mean(name: str, v: Any) -> Any:
    if isinstance(v, str) and v == "image":
        return v
    try:
        grey = float(v)
    except (TypeError, ValueError):
        grey = -1.0
    if not 0 <= grey <= 1:
        raise InputError(f"{name} must be 'image' or a grey level in [0, 1], got {v!r}")
    return grey


def _callback(name: str, v: Any) -> Any:
    if v is not None and not callable(v):
        raise InputError(f"{name} must be a function (step, image) or None, got {v!r}")
    return v


def _layers(name: str, v: Any) -> list[str]:
    return checks.layer_list(v, name)


def _history() -> Any:
    return option(20, "L-BFGS memory: correction pairs kept", check=int_check(), parse=INT)


def _plot() -> Any:
    return option(None, "also draw the loss curves over the iterations (PNG, PDF or SVG; needs "
                        "matplotlib: pip install 'gatys[plot]')", metavar="LOSSES.png",
                  show_default=False)


def _jobs() -> Any:
    return option(None, "cells computed at once in local worker processes (default: half the "
                        "cores; 1 on CUDA)", check=int_check(optional=True), parse=INT,
                  show_default=False)


def _scheduler() -> Any:
    return option(None, "run the cells on the Dask cluster whose scheduler is at this address "
                        "(needs pip install 'gatys[dask]')", metavar="tcp://HOST:8786",
                  check=_address, show_default=False)


def _dask_workers() -> Any:
    return option(None, "run the cells on a local Dask cluster of N worker processes on "
                        "127.0.0.1 (needs pip install 'gatys[dask]')", metavar="N",
                  check=int_check(optional=True), parse=INT, show_default=False)


def _address(name: str, v: Any) -> Any:
    if v is not None and (not isinstance(v, str) or ":" not in v):
        raise InputError(f"{name} must be a Dask scheduler address such as tcp://host:8786, "
                         f"got {v!r}")
    return v


def _progress() -> Any:
    return option(False, "no progress bar", flag="--quiet", cli_default=True)


@dataclass(frozen=True)
class DeviceOptions:
    device: str = option("auto", "where to compute: cpu, cuda (pip install 'gatys[cuda13]' or "
                                 "'gatys[cuda12]', and an NVIDIA GPU) or auto, CUDA where "
                                 "available", check=choice_check(DEVICES), choices=DEVICES)
    tf32: bool = option(False, "CUDA only: let the tensor cores run float32 products in TF32 "
                               "(faster, ~1e-3 relative error in the products)")
    cuda_graphs: bool = option(False, "CUDA only: record an evaluation once as a CUDA graph and "
                                      "replay it (fewer launches from the host; experimental, "
                                      "see docs/cuda.md)")
    threads: int | None = option(
        None, "CPU only: the engine's threads, at every image size (default: GATYS_THREADS if "
              "set, else one per core, at most 8, or 12 on images of 1024x1024 pixels or more)",
        metavar="N", check=int_check(optional=True), parse=INT, show_default=False)


@dataclass(frozen=True)
class NetworkOptions(DeviceOptions):
    pool: str = option("avg", "pooling: avg (the paper's choice) or max (the original VGG)",
                       check=choice_check(POOLS), choices=POOLS)
    weights: str | os.PathLike | None = option(
        None, "a VGG-19 ONNX file (default: the built-in normalised VGG-19)", metavar="PATH",
        show_default=False)
    preprocess: str | None = option(
        None, "input convention of --weights (default: from its metadata or layout)",
        check=choice_check(tuple(PREPROCESS), optional=True), choices=tuple(PREPROCESS),
        show_default=False)


@dataclass(frozen=True)
class RunOptions(NetworkOptions):
    """What every synthesis (a transfer, a reconstruction) takes."""

    size: int = option(512, "longest side of the output in pixels", check=int_check(16), parse=INT)
    iterations: int | Sequence[int] | str = option(
        500, "L-BFGS iterations, or one count per --scales stage", parse=INT_LIST,
        metavar="N[,N2,...]", check=lambda name, v: checks.iteration_counts(v))
    history: int = _history()
    init: Any = option("noise", "starting image: white noise (as the paper: Gaussian, of "
                                "--noise-std around --noise-mean), uniform noise over the whole "
                                "pixel range (gatys 0.1's start), the content or style image, or "
                                "an image file", check=_init,
                       metavar="noise|uniform|content|style|PATH")
    noise_std: float = option(NOISE_STD, "standard deviation of the noise start, in pixel units "
                                         "(1 = black to white)", check=number_check(),
                              parse=FLOAT, metavar="S")
    noise_mean: str | float = option(
        "image", "centre of the noise start: image (the mean colour of the image matched: the "
                 "photo, for a transfer) or a grey level in [0, 1]", check=_noise_mean,
        metavar="image|GREY")
    seed: int | None = option(None, "random seed of the noise start (default: random, recorded "
                                    "in the PNG)", check=int_check(0, optional=True), parse=INT,
                              show_default=False)
    save_every: int | None = option(None, "also write OUT_NNNNN.png every N iterations",
                                    check=int_check(optional=True), parse=INT, metavar="N",
                                    show_default=False)
    plot: str | os.PathLike | None = _plot()
    progress: bool = _progress()
    callback: Callable[..., Any] | None = option(
        None, "called as callback(step, image) after each iteration", check=_callback, cli=False)


# What a transfer does where its options are not given, per pooling (docs/look.md): under max
# pooling (the default), the look of the paper's Fig. 2 as measured by bench/look.py: from the
# photo, coarse to fine in two stages, at 1e-4; under average pooling, the paper's own
# setting: white noise, one stage, 1e-3 (Fig. 2 B-D).
POOL_DEFAULTS: dict[str, dict[str, Any]] = {
    "max": {"ratio": 1e-4, "init": "content", "scales": 2},
    "avg": {"ratio": 1e-3, "init": "noise", "scales": 1},
}
MAX_POOL_RATIO = POOL_DEFAULTS["max"]["ratio"]


@dataclass(frozen=True)
class TransferOptions(RunOptions):
    pool: str = redeclared(NetworkOptions, "pool", "max", "pooling: max (the original VGG's; "
                           "with the defaults below, the paper's look without a lattice of dots: "
                           "docs/look.md) or avg (the paper's choice; --pool avg alone is the "
                           "paper's algorithm)")
    ratio: float | None = option(
        None, f"alpha/beta of eq. 7 (default {POOL_DEFAULTS['max']['ratio']:g} with max pooling; "
              f"{POOL_DEFAULTS['avg']['ratio']:g} with avg, the paper's for Fig. 2 B-D)",
        check=number_check(strict=True, optional=True), parse=FLOAT, show_default=False)
    init: Any = option(
        None, "starting image: noise (as the paper: Gaussian, of --noise-std around "
              "--noise-mean), uniform (gatys 0.1's start), content (the photo), style or an image "
              f"file (default {POOL_DEFAULTS['max']['init']} with max pooling, "
              f"{POOL_DEFAULTS['avg']['init']} with avg)", check=_init_or_default,
        metavar="noise|uniform|content|style|PATH", show_default=False)
    content_weight: float | None = option(
        None, "alpha of eq. 7, instead of --ratio", check=number_check(optional=True), parse=FLOAT,
        metavar="ALPHA", show_default=False)
    style_weight: float | None = option(
        None, "beta of eq. 7, instead of --ratio", check=number_check(optional=True), parse=FLOAT,
        metavar="BETA", show_default=False)
    content_layer: str | Sequence[str] = option(
        DEFAULT_CONTENT_LAYER, "content layer(s), comma-separated",
        check=_layers)
    content_layer_weights: str | Sequence[float] | None = option(
        None, "a weight per content layer (default 1 each)", metavar="W1,W2,...",
        show_default=False)
    style_layers: str | Sequence[str] = option(
        DEFAULT_STYLE_LAYERS, "style layers, comma-separated",
        check=_layers)
    style_layer_weights: str | Sequence[float] | None = option(
        None, "w_l of eq. 5, one per style layer (default 1/L each)", metavar="W1,W2,...",
        show_default=False)
    style_blend: str | Sequence[float] | None = option(
        None, "with several paintings: how much of each (normalised; default equal)",
        metavar="B1,B2,...", show_default=False)
    style_scale: float = option(1.0, "paintings' size relative to the output (> 1: larger "
                                     "strokes)", check=number_check(strict=True), parse=FLOAT,
                                metavar="S")
    tv_weight: float = option(0.0, "weight of a total-variation smoothness term (0: none, as the "
                                   "paper)", check=number_check(), parse=FLOAT, metavar="W")
    preserve_colors: str | None = option(
        None, "keep the photograph's colours: transfer on luminance only, or match the "
              "paintings' colour statistics to the photo first (Gatys et al. 2016)",
        check=choice_check(colour.MODES, optional=True), choices=colour.MODES, show_default=False)
    scales: int | None = option(
        None, "optimise coarse to fine in N stages up to --size, each running --iterations, or "
              f"its own count given as N1,N2,... (default {POOL_DEFAULTS['max']['scales']} with "
              f"max pooling, one where its first stage would be too small for the layers or "
              f"with --start-size; "
              f"{POOL_DEFAULTS['avg']['scales']} with avg)", check=int_check(optional=True),
        parse=INT, metavar="N", show_default=False)
    start_size: int | None = option(None, "longest side of the first stage (default size / "
                                          "2^(N-1))", check=int_check(16, optional=True), parse=INT,
                                    metavar="S", show_default=False)
    regions: Sequence[Any] | None = option(
        None, "spatial control (Gatys et al. 2017): render the white part of the greyscale MASK "
              "(the photo's shape) in PAINTING's style, optionally only the part of the painting "
              "that PAINTING_MASK selects; repeat for more regions; pixels in no region keep "
              "only the content; replaces the STYLE arguments", flag="--region",
        metavar="MASK:PAINTING[:PAINTING_MASK]", parse=str, check=regions_option, repeat=True,
        show_default=False)
    content_scale: str = option(
        "per-position", "per-position: eq. 1 divided by M_l, under which the paper's ratios give "
                        "its look; printed: eq. 1 exactly as printed (docs/loss-scale.md)",
        check=choice_check(CONTENT_SCALES), choices=CONTENT_SCALES)


@dataclass(frozen=True)
class ContentReconstructionOptions(RunOptions):
    layer: str = option("conv4_1", "the layer whose features are matched",
                        check=_layers)


@dataclass(frozen=True)
class StyleReconstructionOptions(RunOptions):
    layers: str | Sequence[str] = option(DEFAULT_STYLE_LAYERS, "style layers, comma-separated",
                                         check=_layers)


@dataclass(frozen=True)
class FigureOptions(NetworkOptions):
    ratios: str | Sequence[float] | None = option(
        None, "alpha/beta: figure 2, one per painting (default 1e-3 for B-D, 1e-4 after); "
              "figure 3, the columns (default 1e-5,1e-4,1e-3,1e-2)", metavar="R1,R2,...",
        show_default=False)
    size: int = option(256, "longest side of each panel", check=int_check(16), parse=INT)
    iterations: int = option(300, "L-BFGS iterations per panel", check=int_check(), parse=INT)
    seed: int = option(0, "seed of every panel's white-noise start", check=int_check(0), parse=INT)
    jobs: int | None = _jobs()
    scheduler: str | None = _scheduler()
    dask_workers: int | None = _dask_workers()
    workdir: str | os.PathLike | None = option(
        None, "where each panel's image and JSON record are kept; a rerun reuses them (default: "
              "FIG_cells beside the output)", metavar="DIR", show_default=False)
    history: int = _history()
    plot: str | os.PathLike | None = _plot()
    progress: bool = _progress()


def _grid(name: str, v: Any) -> Any:
    if v is not None and not isinstance(v, dict):
        raise InputError(f"{name} must map option names to lists of values, e.g. "
                         f"{{'ratio': [1e-4, 1e-3]}}, got {v!r}")
    return v


def _zip(name: str, v: Any) -> Any:
    if v is None:
        return None
    groups = [v] if isinstance(v, str) else list(v)
    if not all(isinstance(g, (str, list, tuple)) for g in groups):
        raise InputError(f"{name} must be groups of option names such as 'ratio,seed', got {v!r}")
    return groups


@dataclass(frozen=True)
class SweepOptions:
    grid: dict[str, Any] | None = option(
        None, "the swept options: name -> list of values (the command line's --ratio 1e-4,1e-3 "
              "and so on)", check=_grid, cli=False)
    config: str | os.PathLike | None = option(
        None, "a TOML file with the grid (content, style, zip, and option = value or [values])",
        metavar="SWEEP.toml", show_default=False)
    zip: Sequence[str] | None = option(
        None, "options whose lists pair up instead of multiplying (repeatable)",
        metavar="OPT1,OPT2", check=_zip, parse=str, repeat=True, show_default=False)
    jobs: int | None = _jobs()
    scheduler: str | None = _scheduler()
    dask_workers: int | None = _dask_workers()
    progress: bool = _progress()


@dataclass(frozen=True)
class DemoOptions(DeviceOptions):
    size: int = option(256, "longest side of the output in pixels", check=int_check(16), parse=INT)
    iterations: int = option(80, "L-BFGS iterations per stage (two stages: half the size, "
                                  "then the size)", check=int_check(), parse=INT)
    seed: int = option(0, "the seed recorded in the PNG (the demo starts from the photo, so no "
                          "noise depends on it)", check=int_check(0), parse=INT)
    progress: bool = _progress()


@dataclass(frozen=True)
class GradcheckOptions:
    device: str = option("auto", "where to run the checks: cpu, cuda or auto (in float64, which "
                                 "--tf32 never affects)", check=choice_check(DEVICES),
                       choices=DEVICES)
    seed: int = option(0, "seed of the random networks, images and directions", check=int_check(0),
                       parse=INT)


def _case_numbers(name: str, v: Any) -> Any:
    if v is None:
        return None
    items = v.split(",") if isinstance(v, str) else list(v)
    try:
        return [int(i) for i in items]
    except (TypeError, ValueError):
        raise InputError(f"{name} must be case numbers separated by commas, got {v!r}") from None


@dataclass(frozen=True)
class ReferenceOptions:
    weights: str | os.PathLike | None = option(
        None, "the VGG-19 ONNX file (default: the built-in normalised VGG-19)", metavar="PATH",
        show_default=False)
    cases: str | Sequence[int] | None = option(
        None, "which cases, as numbers separated by commas (default: all)", metavar="N[,N...]",
        check=_case_numbers, show_default=False)


def _port(name: str, v: Any) -> Any:
    v = checks.positive_int(name, v, 0)
    if v > 65535:
        raise InputError(f"{name} must be a port number, 0 to 65535, got {v}")
    return v


def _folder(name: str, v: Any) -> Any:
    if not isinstance(v, (str, os.PathLike)) or not str(v):
        raise InputError(f"{name} must be a folder's path, got {v!r}")
    return v


@dataclass(frozen=True)
class StudioOptions:
    port: int = option(8765, "the port to listen on (0: any free one, printed)",
                       check=_port, parse=INT, metavar="N")
    folder: str | os.PathLike = option(
        ".", "the studio's folder: its pictures are listed, uploads, painted masks and every "
             "run's PNG (with its parameters) are written there", check=_folder, metavar="DIR")
    host: str = option("127.0.0.1", "the address to listen on; another than this machine's own "
                                    "(127.0.0.1, ::1, localhost) lets others reach the studio "
                                    "(with the printed token) and is warned about",
                       metavar="ADDRESS")
    open: bool = option(False, "open the studio's page in the web browser")
    max_upload_mb: float = option(50.0, "the largest upload accepted, in MB",
                                  check=number_check(strict=True), parse=FLOAT, metavar="MB")
