"""Two engines compared in float32 with the same ReLU decisions.

A pre-activation within float32 rounding of zero can come out positive on one engine (or one
thread count, or one way of cutting a layer) and negative on another: both are right to
float32, but the gradient through that position is passed on one and dropped on the other,
which moves the gradients of every pixel behind it (most of a small image, from conv4_x) far
more than rounding does. :class:`SharedRelus` records one engine's decisions and has the other
take them, counting where it would have decided otherwise, so that the gradients can be
compared tightly everywhere and the differing decisions bounded on their own.
"""
from __future__ import annotations

from typing import Any

import numpy as np


class SharedRelus:
    """The ReLU masks of one backend's conv layers' forward passes, in the order they ran
    (through :meth:`recording`'s backend), handed to another backend's same sequence of forward
    passes (through :meth:`replaying`'s), each output multiplied by the mask it is given: a
    position the two decide differently is left at zero, where both had it within rounding of
    zero."""

    def __init__(self) -> None:
        self.masks: list[np.ndarray] = []
        self.decisions = 0  # ReLU decisions replayed
        self.differing = 0  # of which the replaying backend would have made the other way

    def recording(self, backend: Any) -> Any:
        """``backend``, its conv layers' masks recorded."""
        def record(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
            out, mask = backend.conv3x3_relu_padded(*args, **kwargs)
            self.masks.append(np.array(backend.to_numpy(mask)))
            return out, mask
        return _WithForward(backend, record)

    def replaying(self, backend: Any) -> Any:
        """``backend``, its conv layers given the recorded masks in turn."""
        masks = iter(self.masks)

        def replay(*args: Any, pooled: Any = None) -> tuple[Any, Any]:
            out, own = backend.conv3x3_relu_padded(*args, pooled=pooled)
            given = next(masks, None)
            if given is None or given.shape != own.shape:
                raise ValueError("the backends' forward passes differ: not the same sequence")
            self.decisions += given.size
            self.differing += int((backend.to_numpy(own) != given).sum())
            mask = backend.asarray(given)
            out *= mask
            if pooled is not None:  # pooled again from the output with the decisions given
                backend.pool_into(out, *args[1:3], pooled)
            return out, mask
        return _WithForward(backend, replay)


class _WithForward:
    """A backend with its conv layers' forward pass (``conv3x3_relu_padded``) replaced."""

    def __init__(self, backend: Any, forward: Any) -> None:
        self._backend, self.conv3x3_relu_padded = backend, forward

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)
