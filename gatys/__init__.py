"""gatys: Gatys, Ecker & Bethge, "A Neural Algorithm of Artistic Style" (2015), framework-free.

VGG-19 imported from ONNX into a small NumPy conv engine with the paper's analytic gradients
(eqs. 2 and 6) and hand-written backprop; scipy's L-BFGS-B optimises the pixels.
"""
__version__ = "0.2.0"

from .api import (  # noqa: E402
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
from .errors import GatysError, InputError, OutputError, WeightsError  # noqa: E402
from .figure import FigureResult, figure  # noqa: E402
from .sweep import SweepResult, sweep  # noqa: E402

__all__ = [
    "transfer", "reconstruct_content", "reconstruct_style", "figure", "FigureResult", "sweep",
    "SweepResult",
    "load_network", "Result", "Region",
    "Interrupted", "GatysError", "InputError", "OutputError", "WeightsError",
    "DEFAULT_CONTENT_LAYER", "DEFAULT_STYLE_LAYERS", "__version__",
]
