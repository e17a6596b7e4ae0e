"""The Python API: style transfer and the two reconstructions of Fig. 1. Mirrors the CLI: each
keyword is an option declared in :mod:`gatys.options`, listed with its default in the function's
signature and docstring."""
from __future__ import annotations

import functools
import os
from typing import Any, Sequence

import numpy as np

from . import colour
from .checks import per_stage, stage_sizes, weight_list
from .errors import InputError
from .fitting import check_shape, plan
from .guidance import (GuidedStyle, Region, check_mask_shape, check_not_empty, describe_regions,
                       read_mask, resize_mask)
from .images import ImageLike, read_image, resize, source_shape
from .losses import LossWeights
from .network import Network
from .objective import Objective, content_targets, style_targets
from .declarations import takes
from .options import (DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, MAX_POOL_RATIO,
                      ContentReconstructionOptions,
                      StyleReconstructionOptions, TransferOptions)
from .synthesis import (Interrupted, Result, Run, Stage, check_device, describe_source,
                        load_network, png_text, synthesize)

__all__ = ["transfer", "reconstruct_content", "reconstruct_style", "load_network",
           "check_device", "png_text", "Result", "Interrupted", "Region", "DEFAULT_CONTENT_LAYER",
           "DEFAULT_STYLE_LAYERS"]

# alpha/beta when none is given, per pooling: the paper's 1e-3 (Fig. 2 B-D) under its average
# pooling, and under max pooling the ratio that leaves the same share of the photo's content
# error (measured by bench/artefacts.py: docs/artefacts.md).
DEFAULT_RATIO = {"avg": 1e-3, "max": MAX_POOL_RATIO}


@takes(TransferOptions, lead=3)
def transfer(content: ImageLike, style: ImageLike | Sequence[ImageLike] | None = None,
             output: str | os.PathLike | None = None, options: TransferOptions = None) -> Result:
    """Render ``content`` in the style of ``style`` (the paper's Fig. 2), write it to ``output``
    if given (atomically; PNGs carry the parameters), and return the :class:`Result`.

    ``style`` may be several paintings, whose Gram targets are mixed by ``style_blend``; or
    None with ``regions``, each region of the output in its own painting's style (guided Gram
    matrices, Gatys et al. 2017). With ``scales`` > 1 (or ``start_size``) the image is optimised
    coarse to fine, each stage from the previous result upscaled. Ctrl-C raises
    :class:`Interrupted` after saving.
    """
    o = options
    regions = o.regions or []
    paintings = [] if style is None else list(style) if isinstance(style, (list, tuple)) \
        else [style]
    if regions and paintings:
        raise InputError("give the paintings either as style images or in regions (--region), "
                         "not both")
    if regions and o.style_blend is not None:
        raise InputError("style_blend mixes style images; with regions each region has its own "
                         "painting: leave style_blend out")
    if regions:
        paintings = [r.painting for r in regions]
    masks = {**{f"region {i + 1}'s mask": r.mask for i, r in enumerate(regions)},
             **{f"region {i + 1}'s painting mask": r.painting_mask
                for i, r in enumerate(regions) if r.painting_mask is not None}}
    run = Run.prepare(o, output, {"the content image": content,
                                  **{f"style image {i + 1}": p for i, p in enumerate(paintings)},
                                  **masks})
    alpha, beta = _alpha_beta(o)
    if not paintings:
        raise InputError("no style image given: name at least one painting, or regions "
                         "(--region MASK:PAINTING)")
    blend = weight_list("style_blend", o.style_blend, len(paintings), "one per style image",
                        normalise=True)
    content_w = weight_list("content_layer_weights", o.content_layer_weights,
                            len(o.content_layer), "one per content layer", default=1.0)
    style_w = weight_list("style_layer_weights", o.style_layer_weights, len(o.style_layers),
                          "one per style layer", default=1.0 / len(o.style_layers))
    sizes = stage_sizes(run.size, o.scales, o.start_size)
    per_stage(run.iterations, len(sizes))  # before any work
    # Every shape from the headers and the options, checked, before anything is decoded.
    style_side = max(1, round(run.size * o.style_scale))
    plan(content, "the content image", run.size, o.content_layer + o.style_layers, run.history,
         run.device)
    for i, p in enumerate(paintings):
        plan(p, f"style image {i + 1}", style_side, o.style_layers, 1, run.device,
             advice=lambda side: f"use --style-scale {side / run.size:.3g} or less",
             at=f"at {run.size} px and style scale {o.style_scale:g}")
    for i, r in enumerate(regions):
        check_mask_shape(r.mask, f"region {i + 1}'s mask", "the content image",
                         source_shape(content, "the content image"))
        if r.painting_mask is not None:
            check_mask_shape(r.painting_mask, f"region {i + 1}'s painting mask",
                             "its painting", source_shape(r.painting, f"style image {i + 1}"))
    c = read_image(content, "content", size=run.size)
    arts = [read_image(p, "style", size=style_side) for p in paintings]
    guides = _read_masks(regions, c, arts)
    network = load_network(o.weights, o.preprocess, o.pool, run.device, o.tf32, o.cuda_graphs)
    w = LossWeights(alpha, beta, dict(zip(o.content_layer, content_w)),
                    dict(zip(o.style_layers, style_w)), tv=o.tv_weight)
    stages = _transfer_stages(network, w, o, c, arts, blend, sizes, guides)
    parameters = {"content": describe_source(content),
                  "style": ";".join(describe_source(p) for p in paintings),
                  **({"regions": describe_regions(regions)} if regions else {}),
                  "alpha": alpha, "beta": beta, "ratio": alpha / beta if beta else "inf",
                  "content_layer": ",".join(o.content_layer),
                  "content_layer_weights": ",".join(f"{v:g}" for v in content_w),
                  "style_layers": ",".join(o.style_layers),
                  "style_layer_weights": ",".join(f"{v:g}" for v in style_w),
                  **({} if regions else {"style_blend": ",".join(f"{v:g}" for v in blend)}),
                  "style_scale": o.style_scale,
                  "tv_weight": o.tv_weight, "preserve_colors": o.preserve_colors or "no",
                  "scales": ",".join(map(str, sizes)), "content_scale": o.content_scale}
    return synthesize("transfer", run, stages, parameters)


def _read_masks(regions: list[Region], c: np.ndarray,
                arts: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Each region's (mask over the content image, mask over its painting or None), read at
    the images' sizes; an all-black mask is refused."""
    guides = []
    for i, (r, art) in enumerate(zip(regions, arts)):
        mask = read_mask(r.mask, f"region {i + 1}'s mask", c.shape[1:])
        check_not_empty(mask, f"region {i + 1}'s mask")
        painting_mask = None
        if r.painting_mask is not None:
            painting_mask = read_mask(r.painting_mask, f"region {i + 1}'s painting mask",
                                      art.shape[1:])
            check_not_empty(painting_mask, f"region {i + 1}'s painting mask")
        guides.append((mask, painting_mask))
    return guides


def _alpha_beta(o: TransferOptions) -> tuple[float, float]:
    """alpha and beta of eq. 7 from ``ratio`` or ``content_weight`` / ``style_weight``."""
    weights_given = o.content_weight is not None or o.style_weight is not None
    if o.ratio is not None and weights_given:
        raise InputError("give either ratio or content_weight/style_weight, not both")
    if not weights_given:
        return DEFAULT_RATIO[o.pool] if o.ratio is None else o.ratio, 1.0
    alpha = 1.0 if o.content_weight is None else o.content_weight
    beta = 1.0 if o.style_weight is None else o.style_weight
    if alpha == 0 and beta == 0:
        raise InputError("content_weight and style_weight are both 0: nothing to optimise")
    return alpha, beta


def _transfer_stages(network: Network, w: LossWeights, o: TransferOptions, c: np.ndarray,
                     arts: list[np.ndarray], blend: list[float], sizes: list[int],
                     guides: list[tuple[np.ndarray, np.ndarray | None]]) -> list[Stage]:
    """One stage per size: the photo's content targets and the blend of the paintings' Gram
    targets at that size (or with ``guides``, each region's mask and its painting's guided
    Gram targets), with colour preservation applied as asked."""
    photo = c
    if o.preserve_colors == "histogram":
        arts = [colour.match_colours(art, c) for art in arts]
    elif o.preserve_colors == "luminance":
        arts = [colour.luminance_matched(art, c) for art in arts]
        c = colour.luminance_image(c)
    stages = []
    for side in sizes:
        c_k = resize(c, size=side)
        shape = c_k.shape[1:]
        check_shape(shape, o.content_layer + o.style_layers, what=f"the content at {side} px")
        arts_k = [resize(art, size=max(1, round(side * o.style_scale))) for art in arts]
        for i, art in enumerate(arts_k):
            check_shape(art.shape[1:], o.style_layers, what=f"style image {i + 1} at {side} px "
                                                            f"and style scale {o.style_scale:g}")
        P = content_targets(network, network.backend.asarray(c_k), o.content_layer)
        A: dict[str, Any] = {}
        regions = None
        if guides:
            regions = [GuidedStyle(resize_mask(mask, shape), style_targets(
                network, network.backend.asarray(art), o.style_layers,
                None if art_mask is None else resize_mask(art_mask, art.shape[1:])))
                for (mask, art_mask), art in zip(guides, arts_k)]
        else:
            for b, art in zip(blend, arts_k):  # the blend of the paintings' per-position Grams
                for name, target in style_targets(network, network.backend.asarray(art),
                                                  o.style_layers).items():
                    A[name] = A[name] + b * target if name in A else b * target
        finish = (functools.partial(colour.recombine, content=resize(photo, shape=shape))
                  if o.preserve_colors == "luminance" else (lambda x: x))
        stages.append(Stage(shape, Objective(network, w, P, A, o.content_scale, regions),
                            {"content": c_k, "style": arts_k[0]}, finish))
    return stages


@takes(ContentReconstructionOptions, positional=("layer",))
def reconstruct_content(image: ImageLike, output: str | os.PathLike | None = None,
                        options: ContentReconstructionOptions = None) -> Result:
    """Find an image whose ``layer`` features match those of ``image`` (Fig. 1, top row),
    starting from white noise: the content term alone (eq. 1)."""
    return _reconstruction("content", image, output, options, options.layer)


@takes(StyleReconstructionOptions, positional=("layers",))
def reconstruct_style(image: ImageLike, output: str | os.PathLike | None = None,
                      options: StyleReconstructionOptions = None) -> Result:
    """Synthesise a texture whose Gram matrices on ``layers`` match those of ``image`` (Fig. 1,
    bottom row), from white noise: the style term alone (eq. 5, w_l = 1/L)."""
    return _reconstruction("style", image, output, options, options.layers)


def _reconstruction(kind: str, image: ImageLike, output: Any, options: Any,
                    layers: list[str]) -> Result:
    """Match ``image``'s content (eq. 1) or style (eq. 5) on ``layers`` alone."""
    run = Run.prepare(options, output, {"the image": image})
    plan(image, "the image", run.size, layers, run.history, run.device)
    x = read_image(image, "image", size=run.size)
    network = load_network(options.weights, options.preprocess, options.pool, run.device,
                           options.tf32, options.cuda_graphs)
    target = network.backend.asarray(x)
    if kind == "content":
        w = LossWeights(1.0, 0.0, {n: 1.0 for n in layers}, {})
        objective = Objective(network, w, content_targets(network, target, layers), {})
        parameters = {"image": describe_source(image), "layer": ",".join(layers)}
    else:
        w = LossWeights(0.0, 1.0, {}, {n: 1.0 / len(layers) for n in layers})
        objective = Objective(network, w, {}, style_targets(network, target, layers))
        parameters = {"image": describe_source(image), "layers": ",".join(layers)}
    stage = Stage(x.shape[1:], objective, {kind: x})
    return synthesize(f"reconstruct {kind}", run, [stage], parameters)
