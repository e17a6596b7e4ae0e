"""A sweep's grid: which transfers to run, from lists of option values (command line or TOML),
over contents and styles given as files, globs or folders.

The cells are the product of the contents, the styles and each swept option's values; options
named together in a ``zip`` group vary together instead (their lists pair up). Fixed options
(one value) apply to every cell.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from gatys.batch.cells import Cell
from gatys.errors import InputError
from gatys.io.images import OUTPUT_FORMATS
from gatys.model.objective import DEFAULT_STYLE_LAYERS
from gatys.model.vgg import CONV_NAMES
from gatys.run.declarations import checked, spec_of
from gatys.run.options import TransferOptions

# Options a sweep never sets: about one run's output, not its result (progress, plot,
# save_every, callback), or about several paintings in one cell, where a sweep's cell has one
# (style_blend, regions).
NOT_SWEPT = ("progress", "plot", "save_every", "callback", "regions", "style_blend")
# Options whose single value is itself a list: in text, ";" separates their values (or each
# "a..b" range is one), "," the items of one value.
LIST_VALUED = ("content_layer", "style_layers", "content_layer_weights", "style_layer_weights",
               "iterations")
IMAGE_SUFFIXES = tuple(OUTPUT_FORMATS) + (".gif",)


def sweepable() -> dict[str, dataclasses.Field]:
    """The transfer options a sweep may vary, by API name."""
    return {f.name: f for f in dataclasses.fields(TransferOptions)
            if spec_of(f).cli and f.name not in NOT_SWEPT}


def layer_range(text: str) -> list[str]:
    """"conv1_1..conv3_1": the paper's style layers from one to the other (conv1_1, conv2_1,
    conv3_1), or, for other layers, every convolution between them."""
    first, _, last = (s.strip() for s in text.partition(".."))
    for names in (DEFAULT_STYLE_LAYERS, CONV_NAMES):
        if first in names and last in names and names.index(first) <= names.index(last):
            return list(names[names.index(first): names.index(last) + 1])
    raise InputError(f"layer range {text!r}: write FIRST..LAST with FIRST before LAST, e.g. "
                     "conv1_1..conv5_1")


def values_from_text(name: str, text: str) -> list[Any]:
    """The values of option ``name`` in a command line's text: comma-separated; for a list
    option, separated by ";" (or each "a..b" range one value)."""
    text = text.strip()
    if not text:
        raise InputError(f"--{name.replace('_', '-')} is empty: give at least one value")
    if isinstance(sweepable()[name].default, bool):
        return [_boolean(name, v) for v in text.split(",")]
    if name not in LIST_VALUED:
        return [_parsed(name, v) for v in text.split(",")]
    if name == "iterations":  # a count, or one count per stage
        return [[_parsed(name, n) for n in v.split(",")] if "," in v else _parsed(name, v)
                for v in text.split(";")]
    if ";" in text:
        return [_list_value(v) for v in text.split(";") if v.strip()]
    if ".." in text:
        return [_list_value(v) for v in text.split(",")]
    return [_list_value(text)]


def _parsed(name: str, text: str) -> Any:
    """One value's text, parsed as the option's own command-line flag parses it."""
    parse = spec_of(sweepable()[name]).parse
    text = text.strip()
    if parse is None or parse is str:
        return text
    try:
        value = parse(text)
    except argparse.ArgumentTypeError as e:
        raise InputError(f"--{name.replace('_', '-')}: {e}") from None
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _boolean(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise InputError(f"{name} takes true or false, got {text!r}")
    return value in ("true", "1", "yes")


def _list_value(text: str) -> Any:
    if ".." in text:
        return layer_range(text)
    return [v.strip() for v in text.split(",") if v.strip()]


def values_from_toml(name: str, value: Any) -> list[Any]:
    """The values of option ``name`` in a TOML file: a list sweeps, anything else is fixed; a
    list option's values are lists (or "a..b" ranges)."""
    if name in LIST_VALUED:
        if isinstance(value, list) and value and all(isinstance(v, (list, str)) for v in value) \
                and any(isinstance(v, list) or ".." in v for v in value):
            return [layer_range(v) if isinstance(v, str) and ".." in v else v for v in value]
        return [layer_range(value) if isinstance(value, str) and ".." in value else value]
    return list(value) if isinstance(value, list) else [value]


def expand_pictures(items: Sequence[str | os.PathLike], what: str,
                    outside: Path | None = None) -> list[str]:
    """Pictures named as files, glob patterns or folders (their pictures, sorted), in order,
    without repeats; a folder or a pattern never picks up a file under ``outside`` (the
    sweep's own folder, where its results are)."""
    paths: list[str] = []
    outside = outside.resolve() if outside is not None else None
    for item in map(str, items):
        if os.path.isdir(item):
            found = sorted(str(p) for p in Path(item).iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not _under(p, outside))
            if not found:
                mine = f"; those in {outside} are the sweep's results, not its inputs: keep " \
                    "the results in a folder of their own" if outside is not None \
                    and _under(Path(item), outside) else ""
                raise InputError(f"{what} folder {item} has no pictures "
                                 f"({', '.join(IMAGE_SUFFIXES)}){mine}")
        elif glob.has_magic(item):
            found = sorted(p for p in glob.glob(item)
                           if os.path.isfile(p) and not _under(Path(p), outside))
            if not found:
                raise InputError(f"{what} pattern {item!r} matches no file")
        elif os.path.isfile(item):
            found = [item]
        else:
            raise InputError(f"{what} not found: {item}")
        paths += [p for p in found if p not in paths]
    if not paths:
        raise InputError(f"no {what} given: name files, patterns or folders")
    return paths


@dataclass
class Grid:
    """What a sweep runs: contents x styles x the swept options (``swept``: name -> values;
    each ``zip`` group varies together), with the ``fixed`` options in every cell."""

    contents: list[str]
    styles: list[str]
    swept: dict[str, list[Any]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    zip: list[list[str]] = field(default_factory=list)

    def dimensions(self) -> list[tuple[list[str], list[tuple[Any, ...]]]]:
        """The grid's axes in order: (names, their values together) for each zip group and each
        other swept option."""
        grouped = {n for group in self.zip for n in group}
        axes = []
        for group in self.zip:
            axes.append((group, list(zip(*(self.swept[n] for n in group)))))
        for name, values in self.swept.items():
            if name not in grouped:
                axes.append(([name], [(v,) for v in values]))
        return axes

    def cells(self) -> list[Cell]:
        """One transfer cell per point of the grid, each checked as the API would (bad values
        are refused here, naming the option, before anything runs)."""
        axes = self.dimensions()
        cells, keys = [], set()
        for content, style in itertools.product(self.contents, self.styles):
            for point in itertools.product(*(values for _, values in axes)):
                swept = {n: v for (names, _), values in zip(axes, point)
                         for n, v in zip(names, values)}
                arguments = {"content": content, "style": style, **self.fixed, **swept}
                _check(arguments)
                key = cell_key(content, style, swept, arguments)
                if key in keys:
                    raise InputError(f"the grid has the same cell twice ({key}): a value or a "
                                     "picture is listed twice")
                keys.add(key)
                cells.append(Cell(key, "transfer", arguments))
        return cells


def _check(arguments: dict[str, Any]) -> None:
    checked(TransferOptions(**{k: v for k, v in arguments.items()
                               if k not in ("content", "style")}))


def cell_key(content: str, style: str, swept: dict[str, Any], arguments: dict[str, Any]) -> str:
    """A file-safe name for a cell: its pictures' stems and swept values, and a short hash of
    all its arguments (so two cells never share a name)."""
    def text(v: Any) -> str:
        return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
    parts = [Path(content).stem, Path(style).stem] + [f"{k}-{text(v)}" for k, v in swept.items()]
    slug = re.sub(r"[^A-Za-z0-9.,_-]+", "-", "_".join(parts))[:80]
    digest = hashlib.sha256(json.dumps(arguments, sort_keys=True, default=str).encode())
    return f"{slug}_{digest.hexdigest()[:8]}"


def _under(path: Path, folder: Path | None) -> bool:
    """Whether ``path`` is inside ``folder`` (resolved already)."""
    return folder is not None and path.resolve().is_relative_to(folder)


def build_grid(contents: Sequence[str | os.PathLike], styles: Sequence[str | os.PathLike],
               given: dict[str, Any],
               toml_path: str | os.PathLike | None = None,
               zip_groups: Sequence[str] = (), outside: Path | None = None) -> Grid:
    """The grid from a TOML file (optional) and ``given`` (option name -> the command line's
    text, or values as the TOML file gives them: a list sweeps, anything else is fixed), which
    replaces the file's entry for that option."""
    table: dict[str, Any] = {}
    file_contents: list[str] = []
    file_styles: list[str] = []
    file_zip: list[list[str]] = []
    if toml_path is not None:
        table, file_contents, file_styles, file_zip = _read_toml(Path(toml_path))
    names = sweepable()
    if not all(isinstance(name, str) for name in given):
        raise InputError(f"the grid's keys must be option names, got {list(given)!r}")
    given = {name.replace("-", "_"): value for name, value in given.items()}
    values: dict[str, list[Any]] = {}
    for name, value in {**table, **given}.items():
        if name not in names:
            raise InputError(f"{name!r} is not an option a sweep can set: use transfer options "
                             "such as ratio, seed, size, style_layers")
        text = name in given and isinstance(value, str)  # a TOML string is one value
        values[name] = values_from_text(name, value) if text else values_from_toml(name, value)
        if not values[name]:
            raise InputError(f"{name} has no values: give at least one, or leave it out")
    groups = [g.split(",") if isinstance(g, str) else list(g) for g in zip_groups] or file_zip
    groups = [[n.strip().replace("-", "_") for n in g if n.strip()] for g in groups]
    for group in groups:
        for n in group:
            if n not in values or len(values[n]) < 2:
                raise InputError(f"zip group {','.join(group)}: {n} is not swept (give it a "
                                 "list of values)")
        lengths = {n: len(values[n]) for n in group}
        if len(set(lengths.values())) != 1:
            raise InputError("zip pairs lists of one length, got "
                             + ", ".join(f"{n}: {k}" for n, k in lengths.items()))
    swept = {n: v for n, v in values.items() if len(v) > 1}
    fixed = {n: v[0] for n, v in values.items() if len(v) == 1}
    return Grid(expand_pictures(list(contents) or file_contents, "content", outside),
                expand_pictures(list(styles) or file_styles, "style", outside), swept, fixed,
                groups)


def _read_toml(path: Path) -> tuple[dict[str, Any], list[str], list[str], list[list[str]]]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        raise InputError("reading a sweep's TOML file needs Python 3.11 or later") from None
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not valid TOML: {e}") from None
    base = path.parent

    def pictures(key: str) -> list[str]:
        value = data.pop(key, [])
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(p, str) for p in items):
            raise InputError(f"{path}: {key} must be a picture's path or a list of them, got "
                             f"{value!r}")
        return [str(base / p) if not os.path.isabs(p) else p for p in items]

    contents, styles = pictures("content"), pictures("style")
    groups = data.pop("zip", [])
    if not isinstance(groups, list) or not all(
            isinstance(g, str) or (isinstance(g, list) and all(isinstance(n, str) for n in g))
            for g in groups):
        raise InputError(f"{path}: zip must be a list of groups of option names, as "
                         f"[[\"ratio\", \"seed\"]], got {groups!r}")
    table = data.pop("grid", {})
    if not isinstance(table, dict):
        raise InputError(f"{path}: grid must be a table ([grid]) of options, got {table!r}")
    for key, value in data.items():
        if isinstance(value, dict):
            raise InputError(f"{path}: unknown table [{key}]: a sweep's file has content, style, "
                             "zip, options and a [grid] table of them")
        table[key] = value
    return table, contents, styles, groups
