"""What a run records about itself: its parameters (the options under their declared names,
resolved, plus what the run worked out from them) in one form, written as PNG text chunks and
kept in a figure's or a sweep's cell records."""
from __future__ import annotations

import os
from typing import Any, Sequence

from gatys.version import __version__


def recorded(value: Any) -> Any:
    """An option's value as a record holds it: a list comma-joined (numbers as %g), a path as
    text, a picture given as an array or a PIL image by its type, anything else as it is."""
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, os.PathLike):
        return str(value)
    if value is None or isinstance(value, (str, int, float)):
        return value
    return f"<{type(value).__name__}>"


def device_settings(options: Any) -> dict[str, Any]:
    """The device's settings ``options`` set (the CUDA modes ``tf32`` and ``cuda_graphs``, the
    CPU's ``threads``), for a run's record: only those set, so that records and cell keys made
    before a setting existed stay as they were."""
    return {name: getattr(options, name) for name in ("tf32", "cuda_graphs", "threads")
            if getattr(options, name)}


def describe_source(image: Any) -> str:
    """A picture as a record names it: its path, or its type for an array or a PIL image."""
    return str(recorded(image))


def options_record(options: Any, names: Sequence[str], **resolved: Any) -> dict[str, Any]:
    """The options ``names`` of ``options`` as recorded, each replaced by its value in
    ``resolved`` where the run worked one out (a weight per layer, the stages' sizes)."""
    return {name: recorded(resolved[name] if name in resolved else getattr(options, name))
            for name in names}


def run_record(kind: str, options: Any, parameters: dict[str, Any],
               iterations: int | Sequence[int], network: Any, device: str,
               seed: int) -> dict[str, Any]:
    """A synthesis's whole record: ``kind``, its own ``parameters``, then what every synthesis
    records (size, ``iterations``: one count for every stage or one per stage, pooling, start,
    L-BFGS memory, weights, device and its settings, seed, version)."""
    noise = ("noise_std", "noise_mean") if isinstance(options.init, str) \
        and options.init == "noise" else ()
    return {"command": kind, **parameters,
            **options_record(options, ("size",)),
            "iterations": recorded(iterations),
            **options_record(options, ("pool", "init", *noise, "history")),
            "weights": network.source, "preprocess": network.preprocess.name,
            "device": device, **device_settings(options), "seed": seed,
            "software": f"gatys {__version__}"}


def png_text(parameters: dict[str, Any], step: dict[str, Any] | None) -> dict[str, str]:
    """A run's parameters (and its losses after ``step``) as PNG text chunks."""
    text = {"Software": parameters["software"]}
    text.update({f"gatys:{k}": str(v) for k, v in parameters.items() if k != "software"})
    if step is not None:
        text.update({"gatys:iterations_done": str(step["iteration"]),
                     "gatys:final_content_loss": f"{step['content']:.6g}",
                     "gatys:final_style_loss": f"{step['style']:.6g}"})
    return text


def plot_title(kind: str, parameters: dict[str, Any]) -> str:
    """The title of a run's loss curves (``--plot``)."""
    if kind == "transfer":
        r = parameters["ratio"]
        return f"transfer, alpha/beta {r:g}" if isinstance(r, float) else "transfer"
    return f"{kind} from {parameters.get('layer') or parameters['layers']}"
