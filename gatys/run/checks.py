"""Checks of the values a user gives: each returns the value (normalised) or raises InputError
with a message that names the option and what to give instead."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from gatys.errors import InputError
from gatys.model.vgg import check_layer


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# The largest weight or ratio taken: a loss times it must stay far inside float32's range
# (3.4e38), as must the smallest positive one's reciprocal.
MAX_WEIGHT = 1e12


def non_negative(name: str, value: Any, strict: bool = False) -> float:
    """A weight: a number in [0, MAX_WEIGHT] ((1/MAX_WEIGHT, MAX_WEIGHT] if ``strict``)."""
    try:
        if isinstance(value, bool):
            raise TypeError("a truth value is not a weight")
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (strict and v == 0):
        raise InputError(f"{name} must be a {'positive' if strict else 'non-negative'} "
                         f"finite number, got {value!r}")
    if v > MAX_WEIGHT or (strict and v < 1 / MAX_WEIGHT):
        raise InputError(f"{name} must be between {1 / MAX_WEIGHT if strict else 0:g} and "
                         f"{MAX_WEIGHT:g} (float32 losses overflow beyond), got {value!r}")
    return v


def layer_list(value: str | Sequence[str], what: str) -> list[str]:
    if not isinstance(value, (str, list, tuple)) or not all(isinstance(n, str) for n in value):
        raise InputError(f"{what} must be layer names, as \"conv1_1,conv2_1\" or a list of "
                         f"them, got {value!r}")
    names = [s.strip() for s in value.split(",")] if isinstance(value, str) else list(value)
    names = [n for n in names if n]
    if not names:
        raise InputError(f"{what} is empty: name at least one layer, e.g. conv1_1")
    for n in names:
        check_layer(n)
    if len(set(names)) != len(names):
        raise InputError(f"{what} lists a layer twice: {','.join(names)}")
    return names


def weight_list(name: str, value: Sequence[float] | str | None, count: int, what: str,
             default: float = 1.0, normalise: bool = False) -> list[float]:
    """A list of ``count`` non-negative weights, not all 0 (``default`` each when None);
    scaled to sum to 1 if ``normalise``. Accepts "3,7" as well as [3, 7]."""
    if value is None:
        values = [1.0 / count if normalise else default] * count
    else:
        if not isinstance(value, (str, list, tuple)):
            raise InputError(f"{name} must be {count} weights, as \"3,7\" or a list, got "
                             f"{value!r}")
        items = value.split(",") if isinstance(value, str) else list(value)
        values = [non_negative(name, v) for v in items]
        if len(values) != count:
            raise InputError(f"{name} has {len(values)} values but needs {count} ({what})")
        if not any(values):
            raise InputError(f"{name} is all zeros: give at least one positive weight")
    total = sum(values)
    return [v / total for v in values] if normalise else values


def stage_sizes(size: int, scales: Any, start_size: Any) -> list[int]:
    """Longest sides of the coarse-to-fine stages, ending at ``size``."""
    scales = positive_int("scales", scales)
    if start_size is not None:
        start = positive_int("start_size", start_size, 16)
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


def iteration_counts(value: Any) -> list[int]:
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
    return [positive_int("iterations", v) for v in items]


def per_stage(iterations: list[int], stages: int) -> list[int]:
    if len(iterations) == 1:
        return iterations * stages
    if len(iterations) != stages:
        raise InputError(f"iterations has {len(iterations)} values but there "
                         f"{'is 1 stage' if stages == 1 else f'are {stages} stages'}: give one "
                         "number, or one per stage")
    return iterations


def choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")
    return value
