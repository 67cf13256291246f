"""The dataset cache: keys, reuse, stale and corrupt files, atomic concurrent writes."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from equivision.data.cache import (
    cache_key,
    file_fingerprint,
    is_current,
    load_or_build,
    read_cached,
    write_cached,
)
from equivision.errors import CorruptFileError, DataFileNotFoundError

KIND = "equivision-test-cache/1"


def test_key_covers_the_content_and_ignores_dict_order():
    assert cache_key({"a": 1, "b": [1, 2]}, 3) == cache_key({"b": (1, 2), "a": 1}, 3)
    assert cache_key({"a": 1}, 3) != cache_key({"a": 2}, 3) != cache_key({"a": 1}, 4)
    assert len(cache_key("x")) == 16


def test_fingerprint_changes_with_the_file(tmp_path):
    f = tmp_path / "m.ply"
    f.write_bytes(b"abc")
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    a = file_fingerprint([f], tmp_path)
    assert a == [["m.ply", 3, 1_000_000_000]]
    f.write_bytes(b"abcd")
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    assert file_fingerprint([f], tmp_path) != a
    os.utime(f, ns=(2_000_000_000, 2_000_000_000))
    assert file_fingerprint([f], tmp_path)[0][2] == 2_000_000_000
    with pytest.raises(DataFileNotFoundError):
        file_fingerprint([tmp_path / "none.ply"])


def _builder(value: float, calls: list):
    def build():
        calls.append(value)
        return {"x": torch.full((3, 2), value), "y": torch.arange(3)}
    return build


def test_reuse_stale_and_corrupt(tmp_path):
    path = tmp_path / "sub" / "d.safetensors"
    calls: list = []
    a = load_or_build(path, KIND, cache_key(1), _builder(1.0, calls), {"note": "one"})
    b = load_or_build(path, KIND, cache_key(1), _builder(9.0, calls))
    assert calls == [1.0] and torch.equal(a["x"], b["x"])  # reused, not rebuilt
    data, meta = read_cached(path, KIND, cache_key(1))
    assert meta["note"] == "one" and meta["key"] == cache_key(1) and torch.equal(data["y"], torch.arange(3))
    # another key: refused by the reader, rebuilt by load_or_build
    with pytest.raises(CorruptFileError, match="stale"):
        read_cached(path, KIND, cache_key(2))
    assert not is_current(path, KIND, cache_key(2))
    c = load_or_build(path, KIND, cache_key(2), _builder(2.0, calls))
    assert calls == [1.0, 2.0] and float(c["x"][0, 0]) == 2.0
    # another kind: refused
    with pytest.raises(CorruptFileError, match="not a cache file"):
        read_cached(path, "equivision-other/1", cache_key(2))
    # garbage and a truncated file: refused by the reader, rebuilt by load_or_build
    whole = path.read_bytes()
    for bad in (b"garbage", whole[: len(whole) - 8]):
        path.write_bytes(bad)
        with pytest.raises(CorruptFileError):
            read_cached(path, KIND, cache_key(2))
        d = load_or_build(path, KIND, cache_key(2), _builder(2.0, calls))
        assert float(d["x"][0, 0]) == 2.0 and is_current(path, KIND, cache_key(2))
    assert calls == [1.0, 2.0, 2.0, 2.0]
    with pytest.raises(DataFileNotFoundError):
        read_cached(tmp_path / "none.safetensors", KIND)


def test_concurrent_writers_leave_one_whole_file(tmp_path):
    path = tmp_path / "d.safetensors"
    big = {v: {"x": torch.full((20_000,), float(v))} for v in range(4)}
    write_cached(path, big[0], KIND, "k")
    errors: list = []
    seen: set = set()

    def writer(v: int) -> None:
        try:
            for _ in range(10):
                write_cached(path, big[v], KIND, "k")
        except Exception as e:  # collected, asserted below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(v,)) for v in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        x = read_cached(path, KIND, "k")[0]["x"]  # never half a file
        assert x.shape == (20_000,) and bool((x == x[0]).all())
        seen.add(float(x[0]))
    for t in threads:
        t.join()
    assert not errors
    assert [p.name for p in tmp_path.iterdir()] == ["d.safetensors"]  # no temporary file left
    assert float(read_cached(path, KIND, "k")[0]["x"][0]) in {0.0, 1.0, 2.0, 3.0}


def test_sphere_signals_rebuild_a_corrupt_cache_identically(tmp_path):
    from equivision.data.shapes_sphere import SphereDataConfig, make_sphere_split

    cfg = SphereDataConfig(collection="procedural", bandwidth=4, train_rotations=1, test_rotations=1,
                           procedural_train_per_family=1, procedural_test_per_family=1)
    a = make_sphere_split(cfg, tmp_path, show_progress=False)
    (f,) = tmp_path.iterdir()
    f.write_bytes(b"not safetensors")
    b = make_sphere_split(cfg, tmp_path, show_progress=False)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert [p.name for p in tmp_path.iterdir()] == [f.name]
    other = make_sphere_split(SphereDataConfig(**{**cfg.__dict__, "rotation_seed": 1}), tmp_path,
                              show_progress=False)
    assert len(list(tmp_path.iterdir())) == 2 and not torch.equal(other.train_x, a.train_x)
