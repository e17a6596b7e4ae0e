"""Property-based fuzzing of the command line (Hypothesis): random bytes and mutated real files
as pictures, random values for every numeric and list option, random corruptions of a figure's
work folder. Whatever the input: exit 0 or 2, one line and no traceback on stderr, no file left
that was not asked for, and the inputs unchanged. Pictures that declare huge sizes also run in a
child process under an address-space limit, which bounds their memory; every example runs at
a size where a run takes well under a second."""
from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from gatys import cli

FAST = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def base(tmp_path_factory, real_weights):
    d = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(5)
    Image.fromarray((rng.random((24, 32, 3)) * 255).astype(np.uint8)).save(d / "photo.png")
    Image.fromarray((rng.random((32, 24, 3)) * 255).astype(np.uint8)).save(d / "painting.jpg",
                                                                          quality=90)
    return d


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.iterdir() if p.is_file()}


def check_run(argv: list[str], inputs: Path, out_dir: Path, allowed: set[str], capsys) -> int:
    """Run the CLI in this process and assert the promises; returns the exit code."""
    before = _digest(inputs)
    capsys.readouterr()
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse's refusals
        rc = e.code
    err = capsys.readouterr().err
    assert rc in (0, 2), (rc, err)
    assert "Traceback" not in err and "Warning" not in err, err
    if rc == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "error:" in lines[0], err
    event(f"exit {rc}")
    left = {p.name for p in out_dir.iterdir()}
    assert left <= allowed, left - allowed
    assert _digest(inputs) == before
    return rc


def _fresh(tmp_path: Path, name: str) -> Path:
    d = tmp_path / name
    if d.exists():
        for p in d.iterdir():
            p.unlink() if p.is_file() else None
    d.mkdir(exist_ok=True)
    return d


# --- pictures ---------------------------------------------------------------------------------

def _mutations(data: bytes):
    """Truncations, overwritten bytes and inserted bytes of a real file."""
    return st.one_of(
        st.integers(0, len(data)).map(lambda n: data[:n]),
        st.tuples(st.integers(0, len(data) - 1), st.binary(min_size=1, max_size=16)).map(
            lambda t: data[: t[0]] + t[1] + data[t[0] + len(t[1]):]),
        st.tuples(st.integers(0, len(data)), st.binary(min_size=1, max_size=64)).map(
            lambda t: data[: t[0]] + t[1] + data[t[0]:]),
    )


def _picture(mode: str, size: tuple[int, int]) -> bytes:
    """A picture of ``mode`` (TIFF for the modes PNG cannot hold), of random pixels."""
    buf = io.BytesIO()
    rng = np.random.default_rng(size[0] * 41 + size[1])
    im = Image.fromarray((rng.random(size[::-1]) * 255).astype(np.uint8)).convert(mode)
    im.save(buf, "TIFF" if mode in ("I", "F") else "PNG")
    return buf.getvalue()


ODD_MODES = st.sampled_from(["1", "L", "LA", "P", "RGBA", "I;16", "I", "F"])


@FAST
@given(data=st.data())
def test_any_bytes_as_a_picture(base, tmp_path, capsys, data):
    photo = (base / "photo.png").read_bytes()
    jpeg = (base / "painting.jpg").read_bytes()
    content = data.draw(st.one_of(
        st.binary(max_size=2048), _mutations(photo), _mutations(jpeg),
        st.builds(_picture, ODD_MODES, st.tuples(st.integers(1, 40), st.integers(1, 40)))))
    inputs = _fresh(tmp_path, "in")
    (inputs / "content.png").write_bytes(content)
    (inputs / "style.jpg").write_bytes(jpeg)
    out_dir = _fresh(tmp_path, "out")
    check_run(["transfer", inputs / "content.png", inputs / "style.jpg", "-o",
               out_dir / "o.png", "--size", "32", "--iterations", "1", "--quiet"],
              inputs, out_dir, {"o.png"}, capsys)


def _declaring(width: int, height: int) -> bytes:
    """A valid PNG header (IHDR) that declares ``width`` x ``height``, with no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(w=st.integers(1, 2**31 - 1), h=st.integers(1, 2**31 - 1))
def test_huge_declared_sizes_stay_within_an_address_space_limit(base, tmp_path, w, h):
    """In a child limited to 3 GiB of address space and 60 s: refused (2) or read, never a
    crash, a hang or a traceback."""
    inputs = _fresh(tmp_path, "in")
    (inputs / "big.png").write_bytes(_declaring(w, h))
    limit = 3 << 30

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run([sys.executable, "-m", "gatys", "transfer", inputs / "big.png",
                           base / "painting.jpg", "-o", tmp_path / "o.png", "--size", "32",
                           "--iterations", "1", "--quiet"], capture_output=True, text=True,
                          timeout=60, preexec_fn=limited,
                          env={**os.environ, "GATYS_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


# --- options ----------------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**30, 10**30).map(str),
    st.sampled_from(["", "x", "1e", "--", "0x10", "1_000", " 3", "nan", "-inf", "1e-400"]),
)
LISTS = st.lists(NUMBERS, max_size=7).map(",".join)
# Options and values that keep a run small: the size stays 32, the painting at most 10x.
OPTIONS = {
    "--ratio": NUMBERS, "--content-weight": NUMBERS, "--style-weight": NUMBERS,
    "--tv-weight": NUMBERS, "--seed": NUMBERS, "--history": NUMBERS, "--save-every": NUMBERS,
    "--scales": NUMBERS, "--start-size": NUMBERS,
    "--style-scale": st.one_of(NUMBERS, st.floats(0.01, 10).map(repr)),
    "--content-layer-weights": LISTS, "--style-layer-weights": LISTS, "--style-blend": LISTS,
    "--content-layer": st.sampled_from(["conv4_2", "conv1_1,conv5_1", "conv9_9", ",", ""]),
    "--style-layers": st.sampled_from(["conv1_1", "conv1_1,conv1_1", "pool1", ""]),
}


@FAST
@given(chosen=st.dictionaries(st.sampled_from(sorted(OPTIONS)), st.just(None), min_size=1,
                              max_size=4), data=st.data())
def test_any_option_values(base, tmp_path, capsys, chosen, data):
    argv = ["transfer", base / "photo.png", base / "painting.jpg", "-o", None, "--size", "32",
            "--iterations", "1", "--quiet"]
    for flag in chosen:
        argv += [flag, data.draw(OPTIONS[flag], label=flag)]
    out_dir = _fresh(tmp_path, "out")
    argv[4] = out_dir / "o.png"
    allowed = {"o.png", *(f"o_{i:05d}.png" for i in range(2))}
    check_run(argv, base, out_dir, allowed, capsys)


# --- a figure's work folder -------------------------------------------------------------------

def _corrupt(workdir: Path, how: str, junk: bytes) -> None:
    record = next(workdir.glob("*.json"))
    image = next(workdir.glob("*.png"))
    if how == "image bytes":
        image.write_bytes(junk)
    elif how == "image gone":
        image.unlink()
    elif how == "record bytes":
        record.write_bytes(junk)
    elif how == "record truncated":
        record.write_bytes(record.read_bytes()[: len(junk) % max(1, record.stat().st_size)])
    else:  # a field of the record replaced
        data = json.loads(record.read_text())
        data[how.split(":")[1]] = junk.decode("latin-1")
        record.write_text(json.dumps(data))


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=st.sampled_from(["image bytes", "image gone", "record bytes", "record truncated",
                            "field:image", "field:image_sha256", "field:identity"]),
       junk=st.binary(max_size=64))
def test_any_corruption_of_a_work_folder(base, tmp_path, capsys, how, junk):
    out_dir = _fresh(tmp_path, "fig")
    workdir = out_dir / "cells"
    argv = ["figure", "2", "--content", base / "photo.png", "--style", base / "painting.jpg",
            "-o", out_dir / "f.jpg", "--size", "32", "--iterations", "1", "--jobs", "1",
            "--workdir", workdir, "--quiet"]
    if not workdir.exists():
        assert cli.main([str(a) for a in argv]) == 0
    capsys.readouterr()
    _corrupt(workdir, how, junk)
    before = _digest(base)
    assert cli.main([str(a) for a in argv]) == 0, capsys.readouterr().err
    assert "Traceback" not in capsys.readouterr().err
    assert _digest(base) == before
    with Image.open(out_dir / "f.jpg") as im:
        im.load()
