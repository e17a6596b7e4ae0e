"""``gatys demo``: a transfer on example pictures that ship inside scikit-image's wheel."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .api import Result, transfer
from .errors import InputError
from .declarations import takes
from .options import DemoOptions

CONTENT = "chelsea.png"  # Stefan van der Walt's cat (scikit-image sample data, CC0)
STYLE = "hubble_deep_field.jpg"  # Hubble eXtreme Deep Field (NASA, public domain)
RATIO = 1e-4  # the paper's more stylised setting (Fig. 2 E, F): the cat becomes a starfield


def example_image(name: str) -> Path:
    """Path of one of scikit-image's bundled sample pictures, found without importing it."""
    spec = importlib.util.find_spec("skimage")
    folders = spec.submodule_search_locations if spec else None
    for folder in folders or []:
        path = Path(folder) / "data" / name
        if path.is_file():
            return path
    raise InputError("the demo's pictures come with scikit-image, which is not installed: "
                     "pip install 'gatys[demo]' (or pip install scikit-image)")


@takes(DemoOptions, lead=1)
def run_demo(output: str = "demo.png", options: DemoOptions = None) -> Result:
    """Chelsea the cat in the style of the Hubble Deep Field, at a size that takes a few
    minutes on two CPU cores."""
    o = options
    return transfer(example_image(CONTENT), example_image(STYLE), output, size=o.size,
                    iterations=o.iterations, ratio=RATIO, seed=o.seed, device=o.device,
                    tf32=o.tf32, progress=o.progress)
