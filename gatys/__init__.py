"""gatys: Gatys, Ecker & Bethge, "A Neural Algorithm of Artistic Style" (2015), framework-free.

VGG-19 imported from ONNX into a small NumPy conv engine with the paper's analytic gradients
(eqs. 2 and 6) and hand-written backprop; scipy's L-BFGS-B optimises the pixels.
"""
from gatys import studio  # gatys.studio.serve; its server's libraries are imported on use
from gatys.batch.figure import FigureResult, figure
from gatys.batch.sweep import SweepResult, sweep
from gatys.errors import GatysError, InputError, OutputError, WeightsError
from gatys.run.api import (
    DEFAULT_CONTENT_LAYER,
    DEFAULT_STYLE_LAYERS,
    Interrupted,
    Region,
    Result,
    load_network,
    reconstruct_content,
    reconstruct_style,
    transfer,
)
from gatys.version import __version__

__all__ = [
    "transfer", "reconstruct_content", "reconstruct_style", "figure", "FigureResult", "sweep",
    "SweepResult",
    "load_network", "Result", "Region",
    "Interrupted", "GatysError", "InputError", "OutputError", "WeightsError",
    "DEFAULT_CONTENT_LAYER", "DEFAULT_STYLE_LAYERS", "__version__", "studio",
]
