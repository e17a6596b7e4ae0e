"""Every option of every command, declared once: name, default, help, how the command line
spells and parses it, and how the API checks it.

The Python API's keywords and defaults (:func:`takes`), argparse's options (:func:`add_to_parser`)
and the checks are all derived from these dataclasses, so adding an option is one declaration
here plus the code that uses it. ``tests/test_options.py`` holds the API and the CLI to the same
names and defaults.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

from . import checks, colour
from .errors import InputError
from .kernels import DEVICES
from .losses import CONTENT_SCALES
from .network import POOLS
from .vgg import PREPROCESS

DEFAULT_CONTENT_LAYER = "conv4_2"
DEFAULT_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


_SAME = object()  # Spec.cli_default: the same as the API's


@dataclass(frozen=True)
class Spec:
    """How one option appears outside its dataclass."""

    help: str
    check: Callable[[str, Any], Any] | None = None  # (name, value) -> checked value
    parse: Callable[[str], Any] | None = None  # command-line text -> value
    choices: Sequence[str] | None = None
    metavar: str | None = None
    flag: str | None = None  # default: --name-with-dashes
    cli: bool = True  # False: an API argument only (a callback)
    cli_default: Any = _SAME  # where the command line's default differs
    show_default: bool = True  # False where the help text says what the default means


def option(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field carrying its :class:`Spec`."""
    return field(default=default, metadata={"spec": Spec(help, **spec)})


# --- command-line text -> value -----------------------------------------------------------------

def _parser(cast: Callable[[str], Any], noun: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
    parse.__name__ = noun.split()[-1]
    return parse


INT = _parser(int, "an integer")
FLOAT = _parser(float, "a number")
INT_LIST = _parser(lambda t: [int(v) for v in t.split(",")], "an integer or a list of integers")


# --- checks, by kind of value ---------------------------------------------------------------------

def _int(minimum: int = 1, optional: bool = False) -> Callable[[str, Any], Any]:
    def check(name: str, v: Any) -> Any:
        return None if optional and v is None else checks.positive_int(name, v, minimum)
    return check


def _number(strict: bool = False, optional: bool = False) -> Callable[[str, Any], Any]:
    def check(name: str, v: Any) -> Any:
        return None if optional and v is None else checks.non_negative(name, v, strict)
    return check


def _choice(choices: Sequence[str], optional: bool = False) -> Callable[[str, Any], Any]:
    def check(name: str, v: Any) -> Any:
        return None if optional and v is None else checks.choice(name, v, choices)
    return check


def _init(name: str, v: Any) -> Any:
    if isinstance(v, str) and v not in ("noise", "content", "style") and not os.path.exists(v):
        raise InputError(f"unknown init {v!r}: use noise, content, style or an image file"
                         if "." not in os.path.basename(v) else f"image not found: {v}")
    return v


def _callback(name: str, v: Any) -> Any:
    if v is not None and not callable(v):
        raise InputError(f"{name} must be a function (step, image) or None, got {v!r}")
    return v


# --- the declarations ---------------------------------------------------------------------------

def _history() -> Any:
    return option(20, "L-BFGS memory: correction pairs kept", check=_int(), parse=INT)


def _plot() -> Any:
    return option(None, "also draw the loss curves over the iterations (PNG, PDF or SVG; needs "
                        "matplotlib: pip install 'gatys[plot]')", metavar="LOSSES.png",
                  show_default=False)


def _progress() -> Any:
    return option(False, "no progress bar", flag="--quiet", cli_default=True)


@dataclass(frozen=True)
class DeviceOptions:
    device: str = option("auto", "where to compute: cpu, cuda (pip install 'gatys[cuda13]' or "
                                 "'gatys[cuda12]', and an NVIDIA GPU) or auto, CUDA where "
                                 "available", check=_choice(DEVICES), choices=DEVICES)
    tf32: bool = option(False, "CUDA only: let the tensor cores run float32 products in TF32 "
                               "(faster, ~1e-3 relative error in the products)")


@dataclass(frozen=True)
class NetworkOptions(DeviceOptions):
    pool: str = option("avg", "pooling: avg (the paper's choice) or max (the original VGG)",
                       check=_choice(POOLS), choices=POOLS)
    weights: str | os.PathLike | None = option(
        None, "a VGG-19 ONNX file (default: the built-in normalised VGG-19)", metavar="PATH",
        show_default=False)
    preprocess: str | None = option(
        None, "input convention of --weights (default: from its metadata or layout)",
        check=_choice(tuple(PREPROCESS), optional=True), choices=tuple(PREPROCESS),
        show_default=False)


@dataclass(frozen=True)
class RunOptions(NetworkOptions):
    """What every synthesis (a transfer, a reconstruction) takes."""

    size: int = option(512, "longest side of the output in pixels", check=_int(16), parse=INT)
    iterations: int | Sequence[int] | str = option(
        500, "L-BFGS iterations, or one count per --scales stage", parse=INT_LIST,
        metavar="N[,N2,...]", check=lambda name, v: checks.iteration_counts(v))
    history: int = _history()
    init: Any = option("noise", "starting image: white noise (as the paper), the content or "
                                "style image, or an image file", check=_init,
                       metavar="noise|content|style|PATH")
    seed: int | None = option(None, "random seed of the noise start (default: random, recorded "
                                    "in the PNG)", check=_int(0, optional=True), parse=INT,
                              show_default=False)
    save_every: int | None = option(None, "also write OUT_NNNNN.png every N iterations",
                                    check=_int(optional=True), parse=INT, metavar="N",
                                    show_default=False)
    plot: str | os.PathLike | None = _plot()
    progress: bool = _progress()
    callback: Callable[..., Any] | None = option(
        None, "called as callback(step, image) after each iteration", check=_callback, cli=False)


@dataclass(frozen=True)
class TransferOptions(RunOptions):
    ratio: float | None = option(
        None, "alpha/beta of eq. 7 (default 1e-3, the paper's Fig. 2 B-D; it also uses 1e-4)",
        check=_number(strict=True, optional=True), parse=FLOAT, show_default=False)
    content_weight: float | None = option(
        None, "alpha of eq. 7, instead of --ratio", check=_number(optional=True), parse=FLOAT,
        metavar="ALPHA", show_default=False)
    style_weight: float | None = option(
        None, "beta of eq. 7, instead of --ratio", check=_number(optional=True), parse=FLOAT,
        metavar="BETA", show_default=False)
    content_layer: str | Sequence[str] = option(
        DEFAULT_CONTENT_LAYER, "content layer(s), comma-separated",
        check=lambda name, v: checks.layer_list(v, name))
    content_layer_weights: str | Sequence[float] | None = option(
        None, "a weight per content layer (default 1 each)", metavar="W1,W2,...",
        show_default=False)
    style_layers: str | Sequence[str] = option(
        DEFAULT_STYLE_LAYERS, "style layers, comma-separated",
        check=lambda name, v: checks.layer_list(v, name))
    style_layer_weights: str | Sequence[float] | None = option(
        None, "w_l of eq. 5, one per style layer (default 1/L each)", metavar="W1,W2,...",
        show_default=False)
    style_blend: str | Sequence[float] | None = option(
        None, "with several paintings: how much of each (normalised; default equal)",
        metavar="B1,B2,...", show_default=False)
    style_scale: float = option(1.0, "paintings' size relative to the output (> 1: larger "
                                     "strokes)", check=_number(strict=True), parse=FLOAT,
                                metavar="S")
    tv_weight: float = option(0.0, "weight of a total-variation smoothness term (0: none, as the "
                                   "paper)", check=_number(), parse=FLOAT, metavar="W")
    preserve_colors: str | None = option(
        None, "keep the photograph's colours: transfer on luminance only, or match the "
              "paintings' colour statistics to the photo first (Gatys et al. 2016)",
        check=_choice(colour.MODES, optional=True), choices=colour.MODES, show_default=False)
    scales: int = option(1, "optimise coarse to fine in N stages up to --size, each running "
                            "--iterations, or its own count given as N1,N2,...", check=_int(),
                         parse=INT, metavar="N")
    start_size: int | None = option(None, "longest side of the first stage (default size / "
                                          "2^(N-1))", check=_int(16, optional=True), parse=INT,
                                    metavar="S", show_default=False)
    content_scale: str = option(
        "per-position", "per-position: eq. 1 divided by M_l, under which the paper's ratios give "
                        "its look; printed: eq. 1 exactly as printed (docs/loss-scale.md)",
        check=_choice(CONTENT_SCALES), choices=CONTENT_SCALES)


@dataclass(frozen=True)
class ContentReconstructionOptions(RunOptions):
    layer: str = option("conv4_1", "the layer whose features are matched",
                        check=lambda name, v: checks.layer_list(v, name))


@dataclass(frozen=True)
class StyleReconstructionOptions(RunOptions):
    layers: str | Sequence[str] = option(DEFAULT_STYLE_LAYERS, "style layers, comma-separated",
                                         check=lambda name, v: checks.layer_list(v, name))


@dataclass(frozen=True)
class FigureOptions(NetworkOptions):
    ratios: str | Sequence[float] | None = option(
        None, "alpha/beta: figure 2, one per painting (default 1e-3 for B-D, 1e-4 after); "
              "figure 3, the columns (default 1e-5,1e-4,1e-3,1e-2)", metavar="R1,R2,...",
        show_default=False)
    size: int = option(256, "longest side of each panel", check=_int(16), parse=INT)
    iterations: int = option(300, "L-BFGS iterations per panel", check=_int(), parse=INT)
    seed: int = option(0, "seed of every panel's white-noise start", check=_int(0), parse=INT)
    jobs: int | None = option(None, "panels computed at once in worker processes (default: half "
                                    "the cores; 1 on CUDA)", check=_int(optional=True),
                              parse=INT, show_default=False)
    workdir: str | os.PathLike | None = option(
        None, "where each panel's image and JSON record are kept; a rerun reuses them (default: "
              "FIG_cells beside the output)", metavar="DIR", show_default=False)
    history: int = _history()
    plot: str | os.PathLike | None = _plot()
    progress: bool = _progress()


@dataclass(frozen=True)
class DemoOptions(DeviceOptions):
    size: int = option(192, "longest side of the output in pixels", check=_int(16), parse=INT)
    iterations: int = option(200, "L-BFGS iterations", check=_int(), parse=INT)
    seed: int = option(0, "seed of the noise start", check=_int(0), parse=INT)
    progress: bool = _progress()


@dataclass(frozen=True)
class GradcheckOptions:
    device: str = option("auto", "where to run the checks: cpu, cuda or auto (in float64, which "
                                 "--tf32 never affects)", check=_choice(DEVICES), choices=DEVICES)
    seed: int = option(0, "seed of the random networks, images and directions", check=_int(0),
                       parse=INT)


# --- deriving the API and the CLI ---------------------------------------------------------------

O = TypeVar("O")


def spec_of(f: dataclasses.Field) -> Spec:
    return f.metadata["spec"]


def checked(options: O) -> O:
    """``options`` with every field's check applied (InputError on the first bad one)."""
    values = {}
    for f in dataclasses.fields(options):
        v = getattr(options, f.name)
        check = spec_of(f).check
        values[f.name] = check(f.name, v) if check else v
    return dataclasses.replace(options, **values)


def from_keywords(cls: type[O], function: str, keywords: dict[str, Any]) -> O:
    """An instance of ``cls`` from an API call's keywords, checked; an unknown keyword is a
    TypeError, as Python's own."""
    names = {f.name for f in dataclasses.fields(cls)}
    for k in keywords:
        if k not in names:
            raise TypeError(f"{function}() got an unexpected keyword argument {k!r}")
    return checked(cls(**keywords))


def takes(cls: type, positional: Sequence[str] = (), lead: int = 1) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate an API function ``f(*params, options)``: it is called with keywords, which become
    a checked ``cls``, and its signature and docstring list them with their defaults. The option
    fields named in ``positional`` may also be given positionally, after ``f``'s first ``lead``
    parameters (as ``reconstruct_content(image, "conv4_1", "out.png")``)."""
    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(f).parameters.values() if p.name != "options"]
        fields = {o.name: o for o in dataclasses.fields(cls)}

        @functools.wraps(f)
        def api(*args: Any, **keywords: Any) -> Any:
            given = dict(zip(positional, args[lead:lead + len(positional)]))
            for name in given:
                if name in keywords:
                    raise TypeError(f"{f.__name__}() got multiple values for argument {name!r}")
            own_keywords = {p.name: keywords.pop(p.name) for p in own if p.name in keywords}
            options = from_keywords(cls, f.__name__, {**keywords, **given})
            return f(*args[:lead], *args[lead + len(positional):], **own_keywords,
                     options=options)

        inline = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    default=fields[n].default, annotation=fields[n].type)
                  for n in positional]
        keyword = [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default,
                                     annotation=o.type)
                   for o in dataclasses.fields(cls) if o.name not in positional]
        api.__signature__ = inspect.signature(f).replace(  # type: ignore[attr-defined]
            parameters=own[:lead] + inline + own[lead:] + keyword)
        lines = [f"    ``{o.name}`` = {_show(o.default)}: {spec_of(o).help}"
                 for o in dataclasses.fields(cls)]
        api.__doc__ = (f.__doc__ or "") + "\n\n    Options:\n\n" + "\n".join(lines) + "\n"
        return api
    return wrap


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def flag_of(f: dataclasses.Field) -> str:
    return spec_of(f).flag or "--" + f.name.replace("_", "-")


def cli_default(f: dataclasses.Field) -> Any:
    s = spec_of(f)
    return f.default if s.cli_default is _SAME else s.cli_default


def add_to_parser(p: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    """One command-line option per field of ``cls`` (except API-only ones and ``skip``), each
    with its declared default shown in its help."""
    for f in dataclasses.fields(cls):
        s = spec_of(f)
        if not s.cli or f.name in skip:
            continue
        if isinstance(f.default, bool):  # a flag: off unless given
            action = "store_false" if cli_default(f) else "store_true"
            p.add_argument(flag_of(f), dest=f.name, action=action, help=s.help)
            continue
        help_text = s.help + (f" (default {_show(f.default)})" if s.show_default else "")
        p.add_argument(flag_of(f), dest=f.name, default=f.default, type=_cli_type(f),
                       choices=s.choices, metavar=s.metavar, help=help_text)


def _cli_type(f: dataclasses.Field) -> Callable[[str], Any] | None:
    """The option's parse, then its check, so a bad number is refused by argparse, in one
    line, before anything runs."""
    s = spec_of(f)
    if s.parse is None:
        return None

    def parse(text: str) -> Any:
        value = s.parse(text)
        if s.check is not None:
            try:
                s.check(f.name, value)
            except InputError as e:
                raise argparse.ArgumentTypeError(str(e)) from None
        return value
    parse.__name__ = s.parse.__name__
    return parse


def from_namespace(cls: type, a: argparse.Namespace) -> dict[str, Any]:
    """The API keywords of ``cls`` that the parsed command line ``a`` gives."""
    return {f.name: getattr(a, f.name) for f in dataclasses.fields(cls) if spec_of(f).cli}
