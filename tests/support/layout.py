"""The package's sources laid out as pyproject.toml installs them: ``kernels/`` and ``bench/``
inside ``gatys/`` as ``gatys.kernels`` and ``gatys.bench`` (its ``package-dir``). The import
contract (tests/test_architecture.py) and mypy (.ci/run) read this layout, since neither
follows an editable install's mapping.

    python tests/support/layout.py DIR [--without gatys.bench]
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def installed_layout(into: Path, without: tuple[str, ...] = ()) -> Path:
    """Copy the sources into ``into`` as installed (leaving out the packages ``without``)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = config["package-dir"]
    assert set(folders) <= set(config["packages"])
    for package, folder in sorted(folders.items()):  # "gatys" before "gatys.kernels"
        if package not in without:
            shutil.copytree(ROOT / folder, into / package.replace(".", "/"),
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                            dirs_exist_ok=True)
    return into


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--without", action="append", default=[], metavar="PACKAGE")
    a = parser.parse_args()
    installed_layout(a.folder, tuple(a.without))
