"""An evaluation recorded once as a CUDA graph and replayed, so the host launches one graph per
evaluation in place of some 160 kernels and cuBLAS calls.

At 512^2 with TF32 the GPU's work per evaluation is shorter than the host's time to launch it,
and the GPU waits (docs/cuda.md, the profile step). A graph replays the recorded launches from
the device. What it needs of the function recorded, ``fn(x) -> tuple``:

- device work only: nothing read back to the host (the losses stay 0-d arrays until
  :class:`gatys.objective.Objective` reads them after the replay), no host data copied in;
- the same work for every ``x`` of one shape and dtype (the recording is replayed as is, with
  the new ``x`` copied into the input buffer it was recorded on).
- no cuBLAS call through CuPy, which refuses them while the stream is capturing: the CUDA
  backend's products call cuBLAS through :mod:`.cublas_gemm` then.

The first call at a shape runs ``fn`` as usual; it compiles the kernels, starts cuBLAS and fills
the caller's caches (the targets' Gram matrices, the region masks), which must not happen inside
a recording. The second call records and replays; later calls replay. The recording's buffers
come from a memory pool of its own, kept until the recording is dropped: a replay writes to the
addresses recorded, which no one else may be given. One recording is kept, for the last shape
(a multi-scale run moves on to larger sizes). If recording fails, the failure is logged once and
``fn`` runs as usual from then on.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

Outputs = tuple  # arrays of the backend, and plain numbers


def key_of(x: Any) -> tuple[Any, ...]:
    """What a recording is made for: the input's shape and dtype."""
    return tuple(x.shape), str(x.dtype)


@dataclass
class Recording:
    """A recorded ``fn`` for one input shape and dtype: the input buffer it reads, the outputs
    it writes, and ``launch`` (copy the new input in, replay; queued on the current stream's
    order, nothing waited for)."""

    key: tuple[Any, ...]
    outputs: Outputs
    launch: Callable[[Any], None]
    keep: Any = None  # what must live as long as the recording (graph, pool, stream, input)


class GraphRecorder:
    """Runs ``fn(x)`` through a recording per input shape (see the module's docstring).
    ``record(fn, x) -> Recording`` is the backend's (CudaBackend._record; the host-emulated
    tests give their own)."""

    def __init__(self, xp: Any, record: Callable[[Callable[[Any], Outputs], Any], Recording]):
        self.xp, self._record = xp, record
        self.recording: Recording | None = None
        self._warm: tuple[Any, ...] | None = None  # the shape fn last ran at as usual
        self.failure: str | None = None
        self.replays = 0

    def __call__(self, fn: Callable[[Any], Outputs], x: Any) -> Outputs:
        key = key_of(x)
        if self.failure is None:
            if self.recording is not None and self.recording.key == key:
                return self._replay(x)
            if self._warm == key:
                self.recording = None  # the last shape's buffers go before new ones are taken
                try:
                    self.recording = self._record(fn, x)
                except Exception as e:  # the driver refused the capture: run without graphs
                    self.failure = f"{type(e).__name__}: {e}"
                    logging.getLogger("gatys").warning(
                        f"could not record the evaluation as a CUDA graph ({self.failure}); "
                        "evaluating without graphs")
                    return fn(x)
                return self._replay(x)
        self.recording = None
        self._warm = key
        return fn(x)

    def _replay(self, x: Any) -> Outputs:
        """The outputs of one replay, copied: the next replay overwrites the recorded ones."""
        recording = self.recording
        assert recording is not None  # replayed only once recorded
        recording.launch(x)
        self.replays += 1
        return tuple(o.copy() if isinstance(o, self.xp.ndarray) else o
                     for o in recording.outputs)


def plain(fn: Callable[[Any], Outputs], x: Any) -> Outputs:
    """``fn(x)``: the recorder of backends without graphs."""
    return fn(x)
