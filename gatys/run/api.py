"""The Python API: style transfer and the two reconstructions of Fig. 1. Mirrors the CLI: each
keyword is an option declared in :mod:`gatys.run.options`, listed with its default in the
function's signature and docstring."""
from __future__ import annotations

import os
from typing import Any, Sequence

from gatys.io.images import ImageLike, read_image
from gatys.model.losses import LossWeights
from gatys.model.objective import Objective, content_targets, style_targets
from gatys.run.declarations import declared, options_of
from gatys.run.fitting import plan
from gatys.run.loading import check_device, load_network, network_of
from gatys.run.options import (
    DEFAULT_CONTENT_LAYER,
    DEFAULT_STYLE_LAYERS,
    MAX_POOL_RATIO,
    ContentReconstructionOptions,
    StyleReconstructionOptions,
    TransferOptions,
)
from gatys.run.planning import fitted_stages, plan_transfer, transfer_record, with_default_start
from gatys.run.records import describe_source, png_text, recorded
from gatys.run.regions import Region
from gatys.run.results import Interrupted, Result
from gatys.run.synthesis import Run, Stage, synthesize

__all__ = ["transfer", "reconstruct_content", "reconstruct_style", "load_network",
           "check_device", "png_text", "Result", "Interrupted", "Region", "DEFAULT_CONTENT_LAYER",
           "DEFAULT_STYLE_LAYERS", "MAX_POOL_RATIO"]


@declared(TransferOptions)
def transfer(content: ImageLike, style: ImageLike | Sequence[ImageLike] | None = None,
             output: str | os.PathLike | None = None, **keywords: Any) -> Result:
    """Render ``content`` in the style of ``style`` (the paper's Fig. 2), write it to ``output``
    if given (atomically; PNGs carry the parameters), and return the :class:`Result`.

    ``style`` may be several paintings, whose Gram targets are mixed by ``style_blend``; or
    None with ``regions``, each region of the output in its own painting's style (guided Gram
    matrices, Gatys et al. 2017). With ``scales`` > 1 (or ``start_size``) the image is optimised
    coarse to fine, each stage from the previous result upscaled. Ctrl-C raises
    :class:`Interrupted` after saving.
    """
    o = with_default_start(options_of(TransferOptions, "transfer", keywords))
    p = plan_transfer(o, style)  # from the options alone
    run = Run.prepare(o, output, p.inputs(content))  # the device, and every output guarded
    p, stages = fitted_stages(p, content, run.device)  # shapes from the headers, then decoded
    return synthesize("transfer", run, stages, transfer_record(p, content))


@declared(ContentReconstructionOptions)
def reconstruct_content(image: ImageLike, layer: str = ContentReconstructionOptions.layer,
                        output: str | os.PathLike | None = None, **keywords: Any) -> Result:
    """Find an image whose ``layer`` features match those of ``image`` (Fig. 1, top row),
    starting from white noise: the content term alone (eq. 1)."""
    options = options_of(ContentReconstructionOptions, "reconstruct_content",
                         {"layer": layer, **keywords})
    return _reconstruction("content", image, output, options, list(options.layer))


@declared(StyleReconstructionOptions)
def reconstruct_style(image: ImageLike,
                      layers: str | Sequence[str] = StyleReconstructionOptions.layers,
                      output: str | os.PathLike | None = None, **keywords: Any) -> Result:
    """Synthesise a texture whose Gram matrices on ``layers`` match those of ``image`` (Fig. 1,
    bottom row), from white noise: the style term alone (eq. 5, w_l = 1/L)."""
    options = options_of(StyleReconstructionOptions, "reconstruct_style",
                         {"layers": layers, **keywords})
    return _reconstruction("style", image, output, options, list(options.layers))


def _reconstruction(kind: str, image: ImageLike, output: Any, options: Any,
                    layers: list[str]) -> Result:
    """Match ``image``'s content (eq. 1) or style (eq. 5) on ``layers`` alone."""
    run = Run.prepare(options, output, {"the image": image})
    plan(image, "the image", run.size, layers, run.history, run.device, threads=options.threads)
    x = read_image(image, "image", size=run.size)
    network = network_of(options, run.device)
    target = network.backend.asarray(x)
    if kind == "content":
        w = LossWeights(1.0, 0.0, {n: 1.0 for n in layers}, {})
        objective = Objective(network, w, content_targets(network, target, layers), {})
        parameters = {"image": describe_source(image), "layer": recorded(layers)}
    else:
        w = LossWeights(0.0, 1.0, {}, {n: 1.0 / len(layers) for n in layers})
        objective = Objective(network, w, {}, style_targets(network, target, layers))
        parameters = {"image": describe_source(image), "layers": recorded(layers)}
    stage = Stage(x.shape[1:], objective, {kind: x})
    return synthesize(f"reconstruct {kind}", run, [stage], parameters)
