"""``gatys demo``: the paper's kind of result, a photograph in a painting's style, from a
photograph that ships inside scikit-image's wheel and a painting that ships with gatys."""
from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path
from typing import Any

from gatys.errors import InputError
from gatys.run.api import Result, transfer
from gatys.run.declarations import declared, options_of
from gatys.run.options import DemoOptions

CONTENT = "rocket.jpg"  # a Falcon 9 at dusk (scikit-image sample data; SpaceX, public domain)
PAINTING = "starry_night.jpg"  # Van Gogh, 1889, public domain: gatys/data/SOURCES.md


def painting() -> Path:
    """The painting that ships with gatys (512 px wide)."""
    return Path(str(importlib.resources.files("gatys") / "data" / PAINTING))


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


@declared(DemoOptions)
def run_demo(output: str = "demo.png", **keywords: Any) -> Result:
    """scikit-image's rocket at dusk in the style of The Starry Night, at a size that takes
    about a minute on two CPU cores."""
    o = options_of(DemoOptions, "run_demo", keywords)
    return transfer(example_image(CONTENT), painting(), output, size=o.size,
                    iterations=o.iterations, seed=o.seed, device=o.device,
                    tf32=o.tf32, cuda_graphs=o.cuda_graphs, threads=o.threads,
                    progress=o.progress)
