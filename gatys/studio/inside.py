"""The "Inside" view: what eqs. 1-5 compare while L-BFGS runs, for one style layer and the
content layer, as pictures. Built from the same plan as the run (its stages' targets), so the
matrices shown are the ones the run's objective uses."""
from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from PIL import Image

from gatys.errors import InputError
from gatys.model.objective import feature_matrix
from gatys.run.loading import device_of
from gatys.run.planning import fitted_stages
from gatys.run.synthesis import Stage
from gatys.studio.requests import RunRequest

# Colour maps as anchors interpolated in between: a sequential one (viridis' five quartiles)
# for A^l, G^l and feature maps, a diverging one (blue, white, red) for G^l - A^l.
SEQUENTIAL = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98),
                       (253, 231, 37)], dtype=np.float64)
DIVERGING = np.array([(33, 102, 172), (103, 169, 207), (247, 247, 247), (239, 138, 98),
                      (178, 24, 43)], dtype=np.float64)
FEATURE_MAPS = 4  # channels of the content layer shown
CLIP = 99.5  # the percentile of the matrices' entries at the top of the colour scale


def coloured(values: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``values`` in [0, 1] (H, W) as RGB uint8 through the colour map ``anchors``."""
    t = np.clip(values, 0, 1) * (len(anchors) - 1)
    stops = np.arange(len(anchors))
    rgb = np.stack([np.interp(t, stops, anchors[:, c]) for c in range(3)], axis=-1)
    return (rgb + 0.5).astype(np.uint8)


def data_url(rgb: np.ndarray) -> str:
    """An RGB uint8 array as a PNG data URL."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Inspector:
    """A run's stages, built once from its request (targets included), to show how the
    picture compares with them at any iteration."""

    def __init__(self, request: RunRequest) -> None:
        o = request.plan.options
        _, self.stages = fitted_stages(request.plan, request.content, device_of(o))
        self.style_layers = request.style_layers
        self.content_layer = list(o.content_layer)[0]
        self.regions = len(request.regions)

    def _stage(self, shape: tuple[int, int]) -> Stage:
        for stage in self.stages:
            if stage.shape == shape:
                return stage
        raise InputError(f"the picture is {shape[1]}x{shape[0]} px, no stage of this run is")

    def panels(self, image: np.ndarray, layer: str, region: int = 0) -> dict[str, Any]:
        """For the picture ``image`` (H, W, 3): A^l, G^l and G^l - A^l of ``layer`` (per
        position; of ``region``'s guided Gram matrices with regions) as heat maps, E_l, and a
        few feature maps of the content layer, the photo's beside the picture's."""
        if layer not in self.style_layers:
            raise InputError(f"{layer} is not a style layer of this run: use one of "
                             f"{', '.join(self.style_layers)}")
        if not 0 <= region < max(1, self.regions):
            raise InputError(f"this run has {self.regions} regions, not region {region + 1}")
        x = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
        stage = self._stage(x.shape[1:])
        objective = stage.objective
        network = objective.network
        b = network.backend
        tape = network.forward(b.asarray(x, dtype=network.dtype),
                               keep=[layer, self.content_layer])
        F = feature_matrix(tape.features[layer])
        h = tape.features[self.content_layer]
        E_l = float(b.to_floats([objective.style_layer(layer, F, 1.0, tuple(x.shape))[0]])[0])
        if objective.regions is None:
            A, M = objective.A_per_position[layer], float(F.shape[1])
        else:
            m, M = objective.layer_masks(region, tuple(x.shape), F.dtype)[layer]
            A, F = objective.regions[region].A_per_position[layer], F * m
        G = b.to_numpy(b.gram(F)).astype(np.float64) / max(M, 1.0)
        A = b.to_numpy(A).astype(np.float64)
        # A few entries (the diagonal) dwarf the others: the colours span the bulk, up to a
        # high percentile, and what lies above it is drawn at the top colour.
        top = max(float(np.percentile(np.concatenate([A.ravel(), G.ravel()]), CLIP)), 1e-30)
        spread = max(float(np.percentile(np.abs(G - A), CLIP)), 1e-30)
        P = b.to_numpy(objective.P[self.content_layer]).astype(np.float64)
        Fc = b.to_numpy(feature_matrix(h)).astype(np.float64)
        # the channels that vary most over the photo: those that show its shapes
        channels = np.argsort(-P.var(axis=1))[:FEATURE_MAPS]
        hw = tuple(h.shape[1:])
        maps = []
        for c in channels:
            scale = max(float(P[c].max()), float(Fc[c].max()), 1e-30)
            maps.append({"channel": int(c),
                         "photo": data_url(coloured(P[c].reshape(hw) / scale, SEQUENTIAL)),
                         "picture": data_url(coloured(Fc[c].reshape(hw) / scale, SEQUENTIAL))})
        # Gram entries of ReLU features are >= 0; a square root spreads the small ones.
        return {"layer": layer, "N": int(A.shape[0]), "M": M, "E": E_l, "scale": top,
                "spread": spread, "region": region if objective.regions is not None else None,
                "A": data_url(coloured(np.sqrt(A / top), SEQUENTIAL)),
                "G": data_url(coloured(np.sqrt(np.clip(G, 0, None) / top), SEQUENTIAL)),
                "D": data_url(coloured(0.5 + 0.5 * (G - A) / spread, DIVERGING)),
                "clip": CLIP,
                "content": {"layer": self.content_layer, "maps": maps,
                            "shape": [int(hw[0]), int(hw[1])]}}
