"""gatys reference export / check: the committed small case is reproduced, a round trip
agrees, a changed output is caught, and the committed features agree with onnxruntime (an
implementation that is not ours)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from test_onnx_import import ort_features, rel_err, with_average_pooling

from gatys import cli
from gatys.errors import GatysError, InputError
from gatys.run import reference
from gatys.store.onnx_import import import_vgg19

COMMITTED = Path(__file__).resolve().parent / "reference"


def test_the_committed_case_is_reproduced(real_weights):
    lines = reference.check(COMMITTED, weights=real_weights)
    assert lines and all("outputs agree" in line for line in lines)
    assert sum(p.stat().st_size for p in COMMITTED.rglob("*") if p.is_file()) < 1 << 20


def test_committed_features_agree_with_onnxruntime(real_weights, tmp_path):
    """Our file run in onnxruntime with its MaxPools made AveragePools (the case's pooling),
    in float32, against the committed float64 features."""
    avg = with_average_pooling(real_weights, tmp_path / "avg.onnx")
    case = COMMITTED / "test_data_set_0"
    x = numpy_helper.to_array(_tensor(case / "input_0.pb"))[0].astype(np.float32)
    stored = {t.name[len("features_"):]: numpy_helper.to_array(t)[0]
              for t in map(_tensor, sorted(case.glob("output_*.pb")))
              if t.name.startswith("features_")}
    expected = ort_features(avg, import_vgg19(avg), x, list(stored))
    for name, value in stored.items():
        assert rel_err(value, expected[name]) < 1e-4, name


def _tensor(path: Path) -> onnx.TensorProto:
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return t


def test_export_then_check_round_trip_and_a_changed_output_is_caught(real_weights, tmp_path,
                                                                       capsys):
    out = tmp_path / "ref"
    assert cli.main(["reference", "export", str(out), "--cases", "0,2",
                     "--weights", str(real_weights)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "cases.json",
                                                     "test_data_set_0", "test_data_set_2"]
    assert cli.main(["reference", "check", str(out), "--weights", str(real_weights)]) == 0
    assert capsys.readouterr().out.count("outputs agree") == 2
    grad = out / "test_data_set_2" / "output_13.pb"
    t = _tensor(grad)
    assert t.name == "grad_x"
    exact = numpy_helper.to_array(t).copy()
    rtol = json.loads((out / "cases.json").read_text())["rtol"]

    def stored(a):
        grad.write_bytes(numpy_helper.from_array(a, "grad_x").SerializeToString())

    # The tolerance bounds the largest element's error, relative to the largest element: every
    # element off by half of it agrees; one element off by ten times it, among thousands, not.
    stored(exact + 0.5 * rtol * np.abs(exact).max() * np.sign(exact))
    assert reference.check(out, weights=real_weights, cases=[2])
    one_off = exact.copy()
    one_off.flat[one_off.size // 2] += 10 * rtol * np.abs(exact).max()
    stored(one_off)
    assert exact.size > 1000
    with pytest.raises(GatysError, match="test_data_set_2: grad_x differs by 1.00e-06 relative"):
        reference.check(out, weights=real_weights)


def test_bad_reference_arguments(tmp_path, capsys):
    with pytest.raises(InputError, match="no cases.json"):
        reference.check(tmp_path)
    with pytest.raises(InputError, match="there is no reference case 7"):
        reference.export(tmp_path / "x", cases="7")
    assert cli.main(["reference", "check", str(tmp_path)]) == cli.EXIT_USAGE
    assert "no cases.json" in capsys.readouterr().err


def test_committed_readme_lists_every_output():
    text = (COMMITTED / "README.md").read_text()
    names = [_tensor(p).name for p in (COMMITTED / "test_data_set_0").glob("output_*.pb")]
    assert len(names) == 14 and all(f"`{n}`" in text for n in names)


def _copy_of_committed(tmp_path: Path) -> Path:
    import shutil
    return Path(shutil.copytree(COMMITTED, tmp_path / "reference"))


@pytest.mark.parametrize("tamper, message", [
    (lambda d: (d / "cases.json").write_text("garbage"), "is not a reference index"),
    (lambda d: (d / "cases.json").write_text("{}"), "'weights' is missing"),
    (lambda d: (d / "cases.json").write_text("[]"), "holds a list, not an object"),
    (lambda d: _edit_index(d, lambda r: r.update(cases=[])), "non-empty list of cases"),
    (lambda d: _edit_index(d, lambda r: r["cases"][0].pop("pool")), "KeyError"),
    (lambda d: _edit_index(d, lambda r: r["cases"][0].update(shape=[4, 4])), "too small"),
    (lambda d: _edit_index(d, lambda r: r["cases"][0].update(shape=[16, 16])),
     r"holds x of shape \(1, 3, 16, 24\), cases.json says \(1, 3, 16, 16\)"),
    (lambda d: (d / "test_data_set_0" / "input_1.pb").unlink(), "cannot read"),
    (lambda d: (d / "test_data_set_0" / "input_0.pb").write_bytes(b"\x0a\xff"),
     "not a serialized TensorProto"),
])
def test_a_damaged_reference_folder_is_one_line_naming_the_file(real_weights, tmp_path, capsys,
                                                                tamper, message):
    """Issue 30: garbage, an empty object or a short tensor in the folder is bad input (exit
    2) naming the file and saying how to write it again, never a traceback."""
    folder = _copy_of_committed(tmp_path)
    tamper(folder)
    with pytest.raises(InputError, match=message):
        reference.check(folder, weights=real_weights)
    assert cli.main(["reference", "check", str(folder), "--weights",
                     str(real_weights)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gatys reference export" in err


def _edit_index(folder: Path, change) -> None:
    import json
    record = json.loads((folder / "cases.json").read_text())
    change(record)
    (folder / "cases.json").write_text(json.dumps(record))
