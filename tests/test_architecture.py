"""The direction of imports (docs/development.md): import-linter's contracts in
tests/import_contract.toml, checked on the package as pyproject.toml installs it (kernels/ and
bench/ inside it as gatys.kernels and gatys.bench), and shown to break when a lower layer imports
a higher one or the product imports its benchmark."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.layout import installed_layout

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "tests" / "import_contract.toml"


def lint_imports() -> str:
    here = Path(sys.executable).with_name("lint-imports")
    found = str(here) if here.exists() else shutil.which("lint-imports")
    if found is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    return found


def check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([lint_imports(), "--no-cache", "--no-logo", str(CONTRACT)], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


def test_the_import_contract_is_kept(tmp_path):
    done = check(installed_layout(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout
    # the whole package was analysed, kernels and bench included
    analysed = int(done.stdout.split("Analyzed ")[1].split()[0])
    assert analysed == len(list(tmp_path.rglob("*.py")))


@pytest.mark.parametrize("module, line, broken", [
    ("gatys/model/losses.py", "from gatys.run import options", "gatys.model is not allowed to "
                                                                "import gatys.run"),
    ("gatys/io/images.py", "from gatys.kernels import get_backend", "gatys.io is not allowed "
                                                                    "to import gatys.kernels"),
    ("gatys/kernels/conv.py", "from gatys.model import vgg", "gatys.kernels is not allowed to "
                                                             "import gatys.model"),
    ("gatys/run/api.py", "from gatys.batch import sweep", "gatys.run is not allowed to import "
                                                          "gatys.batch"),
    ("gatys/cli.py", "import gatys.bench.harness", "gatys.cli is not allowed to import "
                                                   "gatys.bench"),
    ("gatys/studio/app.py", "from gatys.batch import sweep", "gatys.studio is not allowed to "
                                                             "import gatys.batch"),
    ("gatys/run/synthesis.py", "from gatys.studio import form", "gatys.run is not allowed to "
                                                                "import gatys.studio"),
])
def test_an_import_against_the_direction_breaks_the_contract(tmp_path, module, line, broken):
    root = installed_layout(tmp_path)
    with open(root / module, "a") as f:
        f.write(f"\n{line}  # noqa\n")
    done = check(root)
    assert done.returncode != 0
    assert broken in " ".join(done.stdout.split()), done.stdout
