"""Backends: the array module and compute primitives for each device.

The algorithm in :mod:`gatys` talks to a :class:`Backend` only, so it is written once and runs on
any device that provides one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy

from . import array_ops


@dataclass(frozen=True)
class Backend:
    """An array module ``xp`` plus the engine's primitives bound to it."""

    name: str
    xp: Any

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a: Any) -> numpy.ndarray:
        return numpy.asarray(a)

    def conv_taps(self, weight: Any) -> Any:
        return array_ops.conv_taps(weight, self.xp)

    def conv_taps_input_grad(self, taps: Any) -> Any:
        return array_ops.conv_taps_input_grad(taps, self.xp)

    def conv3x3(self, x: Any, taps: Any, bias: Any | None = None) -> Any:
        return array_ops.conv3x3(x, taps, bias, self.xp)

    def relu(self, x: Any) -> Any:
        return array_ops.relu(x, self.xp)

    def relu_backward(self, grad: Any, y: Any) -> Any:
        return array_ops.relu_backward(grad, y, self.xp)

    def avg_pool2(self, x: Any) -> Any:
        return array_ops.avg_pool2(x, self.xp)

    def avg_pool2_backward(self, grad: Any, in_shape: tuple[int, int, int]) -> Any:
        return array_ops.avg_pool2_backward(grad, in_shape, self.xp)

    def max_pool2(self, x: Any) -> tuple[Any, Any]:
        return array_ops.max_pool2(x, self.xp)

    def max_pool2_backward(self, grad: Any, index: Any, in_shape: tuple[int, int, int]) -> Any:
        return array_ops.max_pool2_backward(grad, index, in_shape, self.xp)

    def gram(self, F: Any) -> Any:
        return array_ops.gram(F)


DEVICES = ("cpu",)


def get_backend(device: str = "cpu") -> Backend:
    """The backend for ``device``; only ``"cpu"`` (NumPy) exists so far."""
    if device == "cpu":
        return Backend("cpu", numpy)
    raise ValueError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
