"""A transfer in three steps: planned from its options alone (:func:`plan_transfer`, no file
opened), its inputs checked from their headers and then read (:func:`read_inputs`), and its
stages built on the network (:func:`transfer_stages`), with the record it writes
(:func:`transfer_record`)."""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Sequence, cast

import numpy as np

from gatys.errors import InputError
from gatys.io.images import ImageLike, fit_shape, read_image, resize, source_shape
from gatys.model import colour
from gatys.model.guidance import GuidedStyle
from gatys.model.losses import LossWeights
from gatys.model.network import Network
from gatys.model.objective import Objective, content_targets, style_targets
from gatys.run.checks import per_stage, stage_sizes, weight_list
from gatys.run.fitting import check_shape, plan, shape_fits
from gatys.run.loading import network_of
from gatys.run.options import POOL_DEFAULTS, TransferOptions
from gatys.run.records import describe_source, options_record
from gatys.run.regions import (
    Region,
    check_mask_shape,
    check_not_empty,
    describe_regions,
    read_mask,
    resize_mask,
)
from gatys.run.synthesis import Stage

# The options a transfer records as they are (or as resolved: the weights per layer and per
# painting, the stages' sizes); the run's own are added by records.run_record.
RECORDED = ("content_layer", "content_layer_weights", "style_layers", "style_layer_weights",
            "style_blend", "style_scale", "tv_weight", "preserve_colors", "scales",
            "content_scale")
Guide = tuple[np.ndarray, "np.ndarray | None"]  # a region's mask, and its painting's or None


@dataclass(frozen=True)
class TransferPlan:
    """What a transfer will do, decided from its options: the paintings (one per region with
    ``regions``), alpha and beta of eq. 7, the weight of each content layer, style layer
    (w_l) and painting, and the longest side of each stage and of its paintings."""

    options: TransferOptions
    paintings: list[ImageLike]
    regions: list[Region]
    alpha: float
    beta: float
    blend: list[float]
    content_weights: list[float]
    style_weights: list[float]
    sizes: list[int]
    style_side: int
    default_stages: bool = False  # sizes from the pooling's default count, iterations not per stage

    def fitted(self, inputs: "TransferInputs") -> "TransferPlan":
        """This plan, or where its stages are the default and the first is too small for the
        layers on the pictures' shapes (a long panorama, a small size), one stage at the size."""
        if not self.default_stages:
            return self
        o, side = self.options, self.sizes[0]
        pictures = [(inputs.content, side, list(o.content_layer) + list(o.style_layers)),
                    *((art, round(side * o.style_scale), list(o.style_layers))
                      for art in inputs.paintings)]
        if all(shape_fits(fit_shape(a.shape[1], a.shape[2], max(1, s)), layers)
               for a, s, layers in pictures):
            return self
        return dataclasses.replace(self, sizes=self.sizes[-1:], default_stages=False)

    def loss_weights(self) -> LossWeights:
        o = self.options
        return LossWeights(self.alpha, self.beta, dict(zip(o.content_layer, self.content_weights)),
                           dict(zip(o.style_layers, self.style_weights)), tv=o.tv_weight)

    def inputs(self, content: ImageLike) -> dict[str, Any]:
        """What the transfer reads, by description (for the output guard)."""
        masks = {f"region {i + 1}'s mask": r.mask for i, r in enumerate(self.regions)}
        masks.update({f"region {i + 1}'s painting mask": r.painting_mask
                      for i, r in enumerate(self.regions) if r.painting_mask is not None})
        return {"the content image": content,
                **{f"style image {i + 1}": p for i, p in enumerate(self.paintings)}, **masks}


def with_default_start(o: TransferOptions) -> TransferOptions:
    """``o`` with the start its pooling implies where none is given (options.POOL_DEFAULTS)."""
    return o if o.init is not None else dataclasses.replace(o, init=POOL_DEFAULTS[o.pool]["init"])


def _stage_count(o: TransferOptions) -> int:
    """``scales``, or where it is not given its pooling's default: one stage with
    ``start_size`` (which then sets the count) or where two would halve the size below 16 px
    (:meth:`TransferPlan.fitted` drops the first later where it is too small for the pictures)."""
    if o.scales is not None:
        return o.scales
    if o.start_size is not None or o.size < 32:
        return 1
    return int(POOL_DEFAULTS[o.pool]["scales"])


def plan_transfer(o: TransferOptions, style: ImageLike | Sequence[ImageLike] | None
                  ) -> TransferPlan:
    """The plan of a transfer of ``style`` (one painting, several, or None with regions) under
    the checked options ``o``; InputError for options that contradict each other."""
    regions = list(o.regions or [])
    paintings: list[ImageLike] = [] if style is None else list(style) \
        if isinstance(style, (list, tuple)) else [cast(ImageLike, style)]
    if regions and paintings:
        raise InputError("give the paintings either as style images or in regions (--region), "
                         "not both")
    if regions and o.style_blend is not None:
        raise InputError("style_blend mixes style images; with regions each region has its own "
                         "painting: leave style_blend out")
    paintings = [r.painting for r in regions] or paintings
    alpha, beta = _alpha_beta(o)
    if not paintings:
        raise InputError("no style image given: name at least one painting, or regions "
                         "(--region MASK:PAINTING)")
    sizes = stage_sizes(o.size, _stage_count(o), o.start_size)
    counts = list(cast(Sequence[int], o.iterations))  # a list once checked
    per_stage(counts, len(sizes))
    return TransferPlan(
        o, paintings, regions, alpha, beta,
        blend=weight_list("style_blend", o.style_blend, len(paintings), "one per style image",
                          normalise=True),
        content_weights=weight_list("content_layer_weights", o.content_layer_weights,
                                    len(o.content_layer), "one per content layer", default=1.0),
        style_weights=weight_list("style_layer_weights", o.style_layer_weights,
                                  len(o.style_layers), "one per style layer",
                                  default=1.0 / len(o.style_layers)),
        sizes=sizes, style_side=max(1, round(o.size * o.style_scale)),
        default_stages=o.scales is None and len(sizes) > 1 and len(counts) == 1)


def _alpha_beta(o: TransferOptions) -> tuple[float, float]:
    """alpha and beta of eq. 7 from ``ratio`` or ``content_weight`` / ``style_weight``."""
    weights_given = o.content_weight is not None or o.style_weight is not None
    if o.ratio is not None and weights_given:
        raise InputError("give either ratio or content_weight/style_weight, not both")
    if not weights_given:
        return POOL_DEFAULTS[o.pool]["ratio"] if o.ratio is None else o.ratio, 1.0
    alpha = 1.0 if o.content_weight is None else o.content_weight
    beta = 1.0 if o.style_weight is None else o.style_weight
    if alpha == 0 and beta == 0:
        raise InputError("content_weight and style_weight are both 0: nothing to optimise")
    return alpha, beta


@dataclass
class TransferInputs:
    """The pictures a transfer works on, decoded: the photo (3, H, W) at the output's size,
    each painting at its side, and each region's masks at their pictures' sizes."""

    content: np.ndarray
    paintings: list[np.ndarray]
    guides: list[Guide]


def read_inputs(p: TransferPlan, content: ImageLike, device: str) -> TransferInputs:
    """Every shape from the headers checked (the layers and the memory of ``device``, the masks
    against their pictures) before anything is decoded; then the pictures and masks read."""
    o = p.options
    layers = list(o.content_layer) + list(o.style_layers)
    plan(content, "the content image", o.size, layers, o.history, device, threads=o.threads)
    for i, painting in enumerate(p.paintings):
        plan(painting, f"style image {i + 1}", p.style_side, list(o.style_layers), 1, device,
             advice=lambda side: f"use --style-scale {side / o.size:.3g} or less",
             at=f"at {o.size} px and style scale {o.style_scale:g}", threads=o.threads)
    for i, r in enumerate(p.regions):
        check_mask_shape(r.mask, f"region {i + 1}'s mask", "the content image",
                         source_shape(content, "the content image"))
        if r.painting_mask is not None:
            check_mask_shape(r.painting_mask, f"region {i + 1}'s painting mask",
                             "its painting", source_shape(r.painting, f"style image {i + 1}"))
    c = read_image(content, "content", size=o.size)
    arts = [read_image(painting, "style", size=p.style_side) for painting in p.paintings]
    return TransferInputs(c, arts, _read_masks(p.regions, c, arts))


def _read_masks(regions: list[Region], c: np.ndarray, arts: list[np.ndarray]) -> list[Guide]:
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


def fitted_stages(p: TransferPlan, content: ImageLike, device: str
                  ) -> tuple[TransferPlan, list[Stage]]:
    """The plan fitted to its pictures (:func:`read_inputs` on ``device``) and its stages, their
    targets computed on the network it names."""
    o = p.options
    inputs = read_inputs(p, content, device)
    p = p.fitted(inputs)
    network = network_of(o, device)
    return p, transfer_stages(network, p, inputs)


def transfer_stages(network: Network, p: TransferPlan, inputs: TransferInputs) -> list[Stage]:
    """One stage per size, with colour preservation applied as asked: the photo's content
    targets and the blend of the paintings' Gram targets at that size (with regions, each
    region's mask and its painting's guided Gram targets)."""
    o, c, arts = p.options, inputs.content, inputs.paintings
    photo = c
    if o.preserve_colors == "histogram":
        arts = [colour.match_colours(art, c) for art in arts]
    elif o.preserve_colors == "luminance":
        arts = [colour.luminance_matched(art, c) for art in arts]
        c = colour.luminance_image(c)
    return [_stage(network, p, side, c, arts, inputs.guides, photo) for side in p.sizes]


def _stage(network: Network, p: TransferPlan, side: int, c: np.ndarray, arts: list[np.ndarray],
           guides: list[Guide], photo: np.ndarray) -> Stage:
    o, asarray = p.options, network.backend.asarray
    c_k = resize(c, size=side)
    shape = c_k.shape[1:]
    check_shape(shape, list(o.content_layer) + list(o.style_layers),
                what=f"the content at {side} px")
    arts_k = [resize(art, size=max(1, round(side * o.style_scale))) for art in arts]
    for i, art in enumerate(arts_k):
        check_shape(art.shape[1:], list(o.style_layers),
                    what=f"style image {i + 1} at {side} px and style scale {o.style_scale:g}")
    layers = list(o.style_layers)
    P = content_targets(network, asarray(c_k), list(o.content_layer))
    A: dict[str, Any] = {}
    regions = None
    if guides:
        regions = [GuidedStyle(resize_mask(mask, shape), style_targets(
            network, asarray(art), layers,
            None if art_mask is None else resize_mask(art_mask, art.shape[1:])))
            for (mask, art_mask), art in zip(guides, arts_k)]
    else:
        for b, art in zip(p.blend, arts_k):  # the blend of the paintings' per-position Grams
            for name, target in style_targets(network, asarray(art), layers).items():
                A[name] = A[name] + b * target if name in A else b * target
    finish = (functools.partial(colour.recombine, content=resize(photo, shape=shape))
              if o.preserve_colors == "luminance" else (lambda x: x))
    objective = Objective(network, p.loss_weights(), P, A, o.content_scale, regions)
    return Stage(shape, objective, {"content": c_k, "style": arts_k[0]}, finish)


def transfer_record(p: TransferPlan, content: ImageLike) -> dict[str, Any]:
    """What a transfer records of itself, before the run's own parameters."""
    o, regions = p.options, p.regions
    names = [n for n in RECORDED if not (regions and n == "style_blend")]
    return {"content": describe_source(content),
            "style": ";".join(describe_source(painting) for painting in p.paintings),
            **({"regions": describe_regions(regions)} if regions else {}),
            "alpha": p.alpha, "beta": p.beta, "ratio": p.alpha / p.beta if p.beta else "inf",
            **options_record(o, names, content_layer_weights=p.content_weights,
                             style_layer_weights=p.style_weights, style_blend=p.blend,
                             preserve_colors=o.preserve_colors or "no", scales=p.sizes)}
