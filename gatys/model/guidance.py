"""Spatial control (Gatys, Ecker, Bethge, Hertzmann & Shechtman 2017, "Controlling Perceptual
Factors in Neural Style Transfer"): regions of the output, each in the style of its own
painting, through guided Gram matrices.

A region is a greyscale mask over the output (white: in the region, grey: partly) and a
painting, optionally with a mask over the painting selecting the part that defines the style.
The masks are carried to each style layer by simple down-sampling: every 2x2 pool of the
network averages the mask's 2x2 windows (the 2017 paper's first choice; its other choice,
propagating through the receptive fields, is not implemented). Pixels in no region keep only
the content term.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from gatys.model.vgg import LAYERS, walk


def layer_masks(mask: np.ndarray, layers: Iterable[str]) -> dict[str, np.ndarray]:
    """The mask (H, W) down-sampled to each of ``layers`` as that layer's M_l positions: each
    2x2 pool averages the mask's 2x2 windows (dropping an odd last row or column, as the pool
    does); a convolution keeps it."""
    layers = set(layers)
    out = {}
    m = np.asarray(mask, dtype=np.float64)
    for name, conv in walk(max(layers, key=LAYERS.index)):
        if conv is None:
            h, w = m.shape[0] // 2, m.shape[1] // 2
            m = 0.25 * (m[0:2 * h:2, 0:2 * w:2] + m[1:2 * h:2, 0:2 * w:2]
                        + m[0:2 * h:2, 1:2 * w:2] + m[1:2 * h:2, 1:2 * w:2])
        if name in layers:
            out[name] = m.reshape(-1)
    return out


@dataclass
class GuidedStyle:
    """One region of one stage: its mask over the generated image (H, W), on the host, and its
    painting's guided Gram matrix per position for each style layer (see
    :func:`gatys.model.objective.style_targets`)."""

    mask: np.ndarray
    A_per_position: dict[str, Any]
