"""A run as the page asks for it: pictures by their names in the folder, painted regions, and
the form's option values as text; checked as the command line checks them before it is queued,
so a mistake is a one-line message at once, not a failed run later."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatys.errors import InputError
from gatys.run.declarations import options_of
from gatys.run.options import INITS, TransferOptions
from gatys.run.planning import TransferPlan, plan_transfer, with_default_start
from gatys.run.regions import Region
from gatys.studio import folder as pictures
from gatys.studio import form


@dataclass
class RunRequest:
    """What to run: the photo, the paintings (or regions, each a painted mask, its painting
    and optionally a mask over the painting), the form's values, the API keywords they give
    and the transfer's plan from them."""

    content: Path
    styles: list[Path]
    regions: list[Region]
    values: dict[str, Any]
    keywords: dict[str, Any]
    plan: TransferPlan

    @classmethod
    def parse(cls, body: Any, folder: Path) -> "RunRequest":
        if not isinstance(body, dict):
            raise InputError("a run is asked for as a JSON object")
        content = pictures.resolve(folder, body.get("content"), "the photo")
        styles = [pictures.resolve(folder, s, f"painting {i + 1}")
                  for i, s in enumerate(_list(body.get("styles"), "styles"))]
        regions = []
        for i, r in enumerate(_list(body.get("regions"), "regions")):
            if not isinstance(r, dict):
                raise InputError(f"region {i + 1} must be an object with mask and painting")
            what = f"region {i + 1}"
            pmask = r.get("painting_mask")
            regions.append(Region(
                pictures.resolve(folder, r.get("mask"), f"{what}'s mask"),
                pictures.resolve(folder, r.get("painting"), f"{what}'s painting"),
                None if not pmask else pictures.resolve(folder, pmask, f"{what}'s painting mask")))
        values = body.get("options") or {}
        if not isinstance(values, dict):
            raise InputError("the options are asked for as a JSON object")
        init = values.get("init")
        if isinstance(init, str) and init.strip() and init.strip() not in INITS:
            values = {**values, "init": str(pictures.resolve(folder, init.strip(),
                                                             "the start (init)"))}
        keywords = form.keywords(values)
        # InputError for options that contradict each other or the pictures, as gatys
        # transfer gives it before it starts
        o = options_of(TransferOptions, "transfer", {**keywords, "regions": regions or None})
        return cls(content, styles, regions, values, keywords,
                   plan_transfer(with_default_start(o), styles or None))

    @property
    def transfer_keywords(self) -> dict[str, Any]:
        """The keywords of :func:`gatys.transfer` for this run, its regions included."""
        return {**self.keywords, "regions": self.regions or None}

    @property
    def style_layers(self) -> list[str]:
        return list(self.plan.options.style_layers)

    def region_texts(self) -> list[str]:
        """The regions as ``--region`` takes them."""
        return [r.describe() for r in self.regions]

    def record(self) -> dict[str, Any]:
        """The request as the page sends it, with the pictures by name (to reopen a run)."""
        return {"content": self.content.name, "styles": [s.name for s in self.styles],
                "regions": [{"mask": _name(r.mask), "painting": _name(r.painting),
                             "painting_mask": None if r.painting_mask is None
                             else _name(r.painting_mask)}
                            for r in self.regions],
                "options": {k: (Path(v).name if k == "init" and "/" in str(v) else v)
                            for k, v in self.values.items()}}


def _name(path: Any) -> str:
    return Path(str(path)).name  # a region's pictures are paths in the folder here


def _list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"{name} must be a list of picture names")
    return value
