"""The documentation stays true to the code: every gatys command shown parses, every link
between the documents reaches a file and a heading that exist, and docs/math.md names a
gradcheck row for every check and only functions that exist; every file under docs/ stays small
enough to track and every JSON record there parses."""
from __future__ import annotations

import functools
import importlib
import json
import re
import shlex
from pathlib import Path

import pytest

from gatys import cli
from gatys.kernels import get_backend
from gatys.model import gradcheck

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TRACKED_FILE_BYTES = 2_000_000  # the most a file of the repository may hold


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


def _outside_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def headings(text: str) -> set[str]:
    """The anchors GitHub makes of a Markdown text's headings: lower case, punctuation dropped,
    spaces as hyphens, a repeated one numbered (-1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for title in re.findall(r"^#+ (.+)$", _outside_code(text), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        out.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return out


def broken_links(paths: list[Path]) -> list[str]:
    """Each relative link of ``paths`` whose file, or whose heading in a Markdown file, is not
    there, as "document: target"."""
    @functools.lru_cache(maxsize=None)
    def anchors(path: Path) -> set[str]:
        return headings(path.read_text())

    broken = []
    for path in paths:
        for target in re.findall(r"\]\(([^)\s]+)\)", _outside_code(path.read_text())):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path.resolve()
            if not dest.exists():
                broken.append(f"{path.name}: {target}")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{path.name}: {target}")
    return broken


def test_every_link_between_the_documents_reaches_its_file_and_heading():
    assert broken_links(DOCS) == []


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "a.md").write_text("# A title, with commas\n## A title, with commas\n"
                                   "[up](#a-title-with-commas-1) [b](b.md#there) [c](c.md) "
                                   "[web](https://example.org/x#y)\n```\n[code](d.md)\n```\n")
    (tmp_path / "b.md").write_text("# Here\n")
    assert broken_links([tmp_path / "a.md"]) == ["a.md: b.md#there", "a.md: c.md"]


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


@pytest.mark.parametrize("path", sorted((ROOT / "docs").iterdir()), ids=lambda p: p.name)
def test_each_docs_file_is_small_enough_to_track_and_its_json_parses(path):
    """The run records grow with each session; a large one goes one run a line, compact
    (performance.md says how), so that it stays under the limit."""
    assert path.stat().st_size <= TRACKED_FILE_BYTES, f"{path.name}: write it compact"
    if path.suffix == ".json":
        json.loads(path.read_text())
