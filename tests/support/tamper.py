"""A copy of a weights file with one weight changed after it was built: what the checksum
recorded in the file must catch."""
from __future__ import annotations

from pathlib import Path

import onnx
from onnx import numpy_helper


def tampered_weights(source: Path, into: Path, initializer: str = "conv3_2.weight") -> Path:
    """``source`` saved as ``into`` with the first element of ``initializer`` moved by 1e-3."""
    model = onnx.load(str(source))
    for i, t in enumerate(model.graph.initializer):
        if t.name == initializer:
            a = numpy_helper.to_array(t).copy()
            a[0, 0, 0, 0] += 1e-3
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(a, t.name))
    onnx.save(model, str(into))
    return into
