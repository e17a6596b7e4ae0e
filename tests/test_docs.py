"""The documentation stays true to the code: every gatys command shown parses, and
docs/math.md names a gradcheck row for every check and only functions that exist."""
from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

from gatys import cli
from gatys.kernels import get_backend
from gatys.model import gradcheck

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shown_commands():
    """Every `gatys ...` command in a ```sh block, continuation lines joined, comments cut;
    synopsis lines (with [optional] parts) left out."""
    for path in DOCS:
        for block in re.findall(r"```sh\n(.*?)```", path.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                if line.startswith("gatys ") and "[" not in line:
                    yield pytest.param(line, id=f"{path.name}: {line[:60]}")


@pytest.mark.parametrize("line", list(shown_commands()))
def test_every_command_shown_in_the_docs_parses(line):
    args = cli.parse(shlex.split(line)[1:])
    if args.command == "bench":  # gatys bench hands its arguments to the bench's own parser
        importlib.import_module("gatys.bench.command").build_parser("gatys bench").parse_args(
            args.rest)


def test_math_md_names_every_gradcheck_row():
    text = (ROOT / "docs" / "math.md").read_text()
    backend = get_backend("cpu")
    for check in gradcheck.op_checks(backend) + gradcheck.network_checks(backend):
        label = re.split(r" \(|, ", check.name)[0]  # e.g. "conv3x3 input grad", "d/dpixels total"
        assert f"`{label}" in text, check.name


def test_math_md_names_only_functions_that_exist():
    text = (ROOT / "docs" / "math.md").read_text()
    names = set(re.findall(r"`((?:gatys|kernels)\.[\w.]+)", text))
    assert len(names) >= 8
    for name in names:
        parts = name.replace("kernels.", "gatys.kernels.", 1).split(".") \
            if name.startswith("kernels.") else name.split(".")
        for split in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:split]))
                break
            except ImportError:
                continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
