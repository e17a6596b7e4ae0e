"""The synthesis driver shared by every command: the network (loaded once per process), the
run's prepared options, the coarse-to-fine stages, the L-BFGS runs and what a run returns."""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__, weights as weights_store
from .checks import choice, per_stage
from .errors import GatysError, InputError, OutputError
from .images import (ImageLike, check_distinct, check_output_path, read_image, resize,
                     save_image)
from .kernels import DEVICES, get_backend, resolve_device
from .network import POOLS, Network
from .objective import Objective
from .optimize import Outcome, Step, run_lbfgs
from .options import NOISE_STD, RunOptions
from .plot import check_plot_path, save_loss_plot
from .vgg import PREPROCESS

log = logging.getLogger("gatys")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM: ``signum``) during a run: carries the :class:`Result` reached
    (already saved if an output path was given)."""

    def __init__(self, result: "Result", signum: int = signal.SIGINT) -> None:
        super().__init__(result.message)
        self.result, self.signum = result, signum


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


@functools.lru_cache(maxsize=2)
def _network(path: str, modified: float, preprocess: str | None, pool: str,
             device: str, tf32: bool, cuda_graphs: bool) -> Network:
    vgg = weights_store.load(path, preprocess)
    return Network(vgg, get_backend(device, tf32, cuda_graphs), pool=pool)


def cuda_modes(options: Any) -> dict[str, bool]:
    """The CUDA modes (``tf32``, ``cuda_graphs``) ``options`` set, for a run's record: only
    those set, so that records and cell keys made before a mode existed stay as they were."""
    return {name: True for name in ("tf32", "cuda_graphs") if getattr(options, name)}


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


def initial_image(init: ImageLike, shape: tuple[int, int], seed: int,
                  named: dict[str, np.ndarray], noise_std: float = NOISE_STD,
                  noise_mean: str | float = "image") -> np.ndarray:
    """The starting image (3, H, W): for ``noise``, Gaussian white noise of ``noise_std``
    around ``noise_mean`` (the mean colour of the image matched first in ``named``, mid-grey
    if there is none, or a grey level), clipped to [0, 1]; for ``uniform``, each pixel uniform
    over [0, 1]; else the named image or a file, resized to ``shape``."""
    rng = np.random.default_rng(seed)
    if isinstance(init, str) and init == "noise":
        if noise_mean == "image" and named:
            mean = next(iter(named.values())).reshape(3, -1).mean(axis=1)
        elif noise_mean == "image":
            mean = np.full(3, 0.5)
        else:
            mean = np.full(3, float(noise_mean))
        x = mean[:, None, None] + noise_std * rng.standard_normal((3, *shape))
        return np.clip(x, 0, 1).astype(np.float32)
    if isinstance(init, str) and init == "uniform":
        return rng.random((3, *shape), dtype=np.float32)
    if isinstance(init, str) and init in named:
        return resize(named[init], shape=shape)
    if isinstance(init, str) and init in ("content", "style"):
        raise InputError(f"init {init!r} does not apply here: use noise, uniform, "
                         f"{', '.join(named)} or an image file")
    return read_image(init, "init", shape=shape)


@dataclass
class Run:
    """A synthesis's options, checked, with its device resolved and its outputs checked."""

    options: RunOptions
    device: str
    output: Path | None
    plot: Path | None

    @classmethod
    def prepare(cls, options: RunOptions, output: Any, inputs: dict[str, Any]) -> "Run":
        """Check the device and every output before any work: each writable, none the same
        file as another or as one of ``inputs`` (what the run reads, by description)."""
        device = check_device(options.device, options.tf32, options.cuda_graphs)
        out = check_output_path(output) if output is not None else None
        if options.save_every is not None and out is None:
            raise InputError("save_every needs an output path to number the images after")
        plot = check_plot_path(options.plot) if options.plot is not None else None
        inputs = {**inputs, "the starting image (init)": options.init,
                  "the weights file": options.weights}
        check_distinct({"the output": out, "the loss plot (plot)": plot}, inputs)
        if out is not None and options.save_every is not None:
            numbered = re.compile(rf"{re.escape(out.stem)}_\d{{5}}{re.escape(out.suffix)}")
            for what, source in inputs.items():
                if isinstance(source, (str, os.PathLike)) and numbered.fullmatch(Path(source).name) \
                        and Path(source).resolve().parent == out.resolve().parent:
                    raise OutputError(f"save_every would write over {what} ({source}): choose "
                                      "another output name")
        return cls(options, device, out, plot)

    @property
    def size(self) -> int:
        return self.options.size

    @property
    def history(self) -> int:
        return self.options.history

    @property
    def iterations(self) -> list[int]:
        return list(self.options.iterations)


@dataclass
class Stage:
    """One optimisation at one size: the objective, the images "init" may name, and the map
    from the optimised image to the one the user gets."""

    shape: tuple[int, int]
    objective: Objective
    named_images: dict[str, np.ndarray]
    finish: Callable[[np.ndarray], np.ndarray] = lambda x: x


def synthesize(kind: str, run: Run, stages: list[Stage], parameters: dict[str, Any]) -> Result:
    """Optimise each stage in turn: the first from ``run.init``, each later one from the previous
    result upscaled to its size (coarse to fine). Iterations are numbered across stages."""
    network = stages[-1].objective.network
    o = run.options
    seed = secrets.randbelow(2**32) if o.seed is None else o.seed
    counts = per_stage(run.iterations, len(stages))
    parameters = {"command": kind, **parameters, "size": run.size,
                  "iterations": counts[0] if len(run.iterations) == 1
                  else ",".join(map(str, counts)),
                  "pool": o.pool, "init": describe_source(o.init),
                  **({"noise_std": o.noise_std, "noise_mean": o.noise_mean}
                     if isinstance(o.init, str) and o.init == "noise" else {}),
                  "history": run.history,
                  "weights": network.source, "preprocess": network.preprocess.name,
                  "device": run.device, **cuda_modes(o), "seed": seed,
                  "software": f"gatys {__version__}"}
    intermediates: list[Path] = []
    history: list[dict[str, float]] = []
    output = run.output
    start = time.perf_counter()
    evaluation_seconds = 0.0
    x = initial_image(o.init, stages[0].shape, seed, stages[0].named_images, o.noise_std,
                      o.noise_mean)
    for number, stage in enumerate(stages, 1):
        if number > 1:
            x = resize(x, shape=stage.shape)
        done = len(history)

        def on_step(step: Step, x: np.ndarray, stage: Stage = stage, done: int = done,
                    number: int = number) -> None:
            step = dataclasses.replace(step, iteration=done + step.iteration)
            history.append({**step.as_dict(), "stage": number, "height": stage.shape[0],
                            "width": stage.shape[1]})
            if output is not None and o.save_every and step.iteration % o.save_every == 0:
                path = output.with_name(f"{output.stem}_{step.iteration:05d}{output.suffix}")
                intermediates.append(save_image(path, stage.finish(x),
                                                png_text(parameters, history[-1])))
            if o.callback is not None:
                o.callback(step, stage.finish(x).transpose(1, 2, 0))

        label = kind if len(stages) == 1 else f"{kind} {stage.shape[1]}x{stage.shape[0]}"
        outcome: Outcome = run_lbfgs(stage.objective, x, counts[number - 1],
                                     run.history, progress=o.progress, on_step=on_step,
                                     description=label)
        x = outcome.x
        evaluation_seconds += outcome.evaluation_seconds
        if outcome.interrupted or outcome.failed:
            break
    image = stage.finish(x)
    result = Result(image.transpose(1, 2, 0).copy(), history, parameters, outcome.message,
                    interrupted=bool(outcome.interrupted), seconds=time.perf_counter() - start,
                    evaluation_seconds=evaluation_seconds, intermediates=intermediates)
    if output is not None:
        last = history[-1] if history else None
        result.output = save_image(output, image, png_text(parameters, last))
    if run.plot is not None and history:
        save_loss_plot(run.plot, [(plot_title(kind, parameters), history)])
    if outcome.interrupted:
        raise Interrupted(result, outcome.interrupted)
    if outcome.failed:
        kept = f"; the last finite image is in {result.output}" if result.output else ""
        raise GatysError(f"{outcome.message}{kept}")
    return result


def plot_title(kind: str, parameters: dict[str, Any]) -> str:
    if kind == "transfer":
        r = parameters["ratio"]
        return f"transfer, alpha/beta {r:g}" if isinstance(r, float) else "transfer"
    return f"{kind} from {parameters.get('layer') or parameters['layers']}"


def png_text(parameters: dict[str, Any], step: dict[str, Any] | None) -> dict[str, str]:
    """A run's parameters (and its losses after ``step``) as PNG text chunks."""
    text = {"Software": parameters["software"]}
    text.update({f"gatys:{k}": str(v) for k, v in parameters.items() if k != "software"})
    if step is not None:
        text.update({"gatys:iterations_done": str(step["iteration"]),
                     "gatys:final_content_loss": f"{step['content']:.6g}",
                     "gatys:final_style_loss": f"{step['style']:.6g}"})
    return text


def describe_source(image: ImageLike) -> str:
    return str(image) if isinstance(image, (str, os.PathLike)) else f"<{type(image).__name__}>"
