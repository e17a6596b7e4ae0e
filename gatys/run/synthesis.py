"""One synthesis, every command's: the run's prepared options, its coarse-to-fine stages, the
L-BFGS runs over them (:func:`optimise`, which returns what they reached) and
:func:`synthesize`, which records, saves and reports it."""
from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence, cast

import numpy as np

from gatys.errors import GatysError, InputError, OutputError
from gatys.io.images import (
    ImageLike,
    check_distinct,
    check_output_path,
    read_image,
    resize,
    save_image,
)
from gatys.io.plot import check_plot_path, save_loss_plot
from gatys.model.objective import Objective
from gatys.model.optimize import Outcome, Step, run_lbfgs
from gatys.run.checks import per_stage
from gatys.run.loading import device_of
from gatys.run.options import NOISE_STD, RunOptions
from gatys.run.records import plot_title, png_text, run_record
from gatys.run.results import Interrupted, Result


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
        device = device_of(options)
        out = check_output_path(output) if output is not None else None
        if options.save_every is not None and out is None:
            raise InputError("save_every needs an output path to number the images after")
        plot = check_plot_path(options.plot) if options.plot is not None else None
        inputs = {**inputs, "the starting image (init)": options.init,
                  "the weights file": options.weights}
        check_distinct({"the output": out, "the loss plot (plot)": plot}, inputs)
        if out is not None and options.save_every is not None:
            _check_snapshots_spare(out, {**inputs, "the loss plot (plot)": plot})
        return cls(options, device, out, plot)

    @property
    def size(self) -> int:
        return self.options.size

    @property
    def history(self) -> int:
        return self.options.history

    @property
    def iterations(self) -> list[int]:
        return list(cast("Sequence[int]", self.options.iterations))  # a list once checked


def _check_snapshots_spare(out: Path, others: dict[str, Any]) -> None:
    """OutputError if one of ``others`` (what the run reads, and its other outputs) is named as
    a ``save_every`` snapshot of ``out``."""
    numbered = re.compile(rf"{re.escape(out.stem)}_\d{{5}}{re.escape(out.suffix)}")
    for what, source in others.items():
        if not isinstance(source, (str, os.PathLike)):
            continue
        path = Path(source)
        if numbered.fullmatch(path.name) and path.resolve().parent == out.resolve().parent:
            raise OutputError(f"save_every would write over {what} ({source}): choose "
                              "another output name")


@dataclass
class Stage:
    """One optimisation at one size: the objective, the images "init" may name, and the map
    from the optimised image to the one the user gets."""

    shape: tuple[int, int]
    objective: Objective
    named_images: dict[str, np.ndarray]
    finish: Callable[[np.ndarray], np.ndarray] = lambda x: x


# After each iteration: the step (numbered across stages), its entry in the run's history, the
# stage and the image it optimises.
OnStep = Callable[[Step, dict[str, Any], Stage, np.ndarray], None]


@dataclass
class _StageSteps:
    """One stage's L-BFGS steps as the run's: numbered on from the stages before, appended to
    the run's history (with the stage and its size) and passed on to ``on_step``."""

    number: int
    stage: Stage
    history: list[dict[str, Any]]
    on_step: OnStep
    done: int = 0

    def __post_init__(self) -> None:
        self.done = len(self.history)

    def __call__(self, step: Step, x: np.ndarray) -> None:
        step = replace(step, iteration=self.done + step.iteration)
        self.history.append({**step.as_dict(), "stage": self.number,
                             "height": self.stage.shape[0], "width": self.stage.shape[1]})
        self.on_step(step, self.history[-1], self.stage, x)


@dataclass
class Optimised:
    """What the stages reached: the image the user gets (3, H, W), the history of every
    iteration, and the last stage's L-BFGS outcome (interrupted, failed, its message)."""

    image: np.ndarray
    history: list[dict[str, Any]]
    outcome: Outcome
    evaluation_seconds: float = 0.0


def optimise(stages: list[Stage], x: np.ndarray, counts: list[int], history_size: int,
             progress: bool, label: str, on_step: OnStep) -> Optimised:
    """Optimise each stage in turn from ``x``, each later one from the previous result upscaled
    to its size (coarse to fine), ``counts`` iterations each, numbered across stages; stop
    early if a stage is interrupted or its loss stops being finite."""
    history: list[dict[str, Any]] = []
    evaluation_seconds = 0.0
    for number, stage in enumerate(stages, 1):
        if number > 1:
            x = resize(x, shape=stage.shape)
        description = label if len(stages) == 1 else \
            f"{label} {stage.shape[1]}x{stage.shape[0]}"
        outcome = run_lbfgs(stage.objective, x, counts[number - 1], history_size,
                            progress=progress, on_step=_StageSteps(number, stage, history, on_step),
                            description=description)
        x = outcome.x
        evaluation_seconds += outcome.evaluation_seconds
        if outcome.interrupted or outcome.failed:
            break
    return Optimised(stage.finish(x), history, outcome, evaluation_seconds)


@dataclass
class _Snapshots:
    """After each iteration: every ``save_every``-th image written beside the output (with the
    record so far), and the user's callback called with the image (H, W, 3)."""

    run: Run
    parameters: dict[str, Any]
    written: list[Path] = field(default_factory=list)

    def __call__(self, step: Step, entry: dict[str, Any], stage: Stage, x: np.ndarray) -> None:
        o, output = self.run.options, self.run.output
        if output is not None and o.save_every and step.iteration % o.save_every == 0:
            path = output.with_name(f"{output.stem}_{step.iteration:05d}{output.suffix}")
            try:
                self.written.append(save_image(path, stage.finish(x),
                                               png_text(self.parameters, entry)))
            except OutputError as e:  # a disk that fills: say what stays, not only what failed
                if self.written:
                    first, last = self.written[0].name, self.written[-1].name
                    e = OutputError(f"{e}; the run stopped, and the {len(self.written)} "
                                    f"snapshots written before it are kept ({first} to {last})")
                raise e from None
        if o.callback is not None:
            o.callback(step, stage.finish(x).transpose(1, 2, 0))


def synthesize(kind: str, run: Run, stages: list[Stage], parameters: dict[str, Any]) -> Result:
    """Run :func:`optimise` from ``run``'s starting image, then keep what it reached: the
    result with its record, written to the output and plotted where asked; Ctrl-C raises
    :class:`Interrupted` and a loss that stopped being finite GatysError, after writing."""
    o = run.options
    seed = secrets.randbelow(2**32) if o.seed is None else o.seed
    counts = per_stage(run.iterations, len(stages))
    parameters = run_record(kind, o, parameters,
                            counts[0] if len(run.iterations) == 1 else counts,
                            stages[-1].objective.network, run.device, seed)
    snapshots = _Snapshots(run, parameters)
    start = time.perf_counter()
    x = initial_image(o.init, stages[0].shape, seed, stages[0].named_images, o.noise_std,
                      o.noise_mean)
    reached = optimise(stages, x, counts, run.history, o.progress, kind, snapshots)
    outcome, history = reached.outcome, reached.history
    result = Result(reached.image.transpose(1, 2, 0).copy(), history, parameters,
                    outcome.message, interrupted=bool(outcome.interrupted),
                    seconds=time.perf_counter() - start,
                    evaluation_seconds=reached.evaluation_seconds,
                    intermediates=snapshots.written)
    if run.output is not None:
        last = history[-1] if history else None
        result.output = save_image(run.output, reached.image, png_text(parameters, last))
    if run.plot is not None and history:
        save_loss_plot(run.plot, [(plot_title(kind, parameters), history)])
    if outcome.interrupted:
        raise Interrupted(result, outcome.interrupted)
    if outcome.failed:
        kept = f"; the last finite image is in {result.output}" if result.output else ""
        raise GatysError(f"{outcome.message}{kept}")
    return result
