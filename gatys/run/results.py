"""What a run returns: its :class:`Result`, or :class:`Interrupted` carrying the one reached."""
from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


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


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM: ``signum``) during a run: carries the :class:`Result` reached
    (already saved if an output path was given)."""

    def __init__(self, result: Result, signum: int = signal.SIGINT) -> None:
        super().__init__(result.message)
        self.result, self.signum = result, signum
