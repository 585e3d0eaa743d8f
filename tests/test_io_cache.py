"""The cache of parsed model files (treeprune.io._cache): what ``load`` reads back from it is the
Ensemble the readers parse, field for field and bit for bit, and a cache that is damaged,
planted, stale or unwritable never changes a result."""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import treeprune as tp
import treeprune.io as tio
from treeprune.ensemble import Ensemble
from treeprune.io import _cache

LEGACY = Path(__file__).parent / "fixtures" / "legacy"
#: Every kind of model file: LightGBM text (categorical too), XGBoost JSON, UBJ, old binary.
FILES = sorted(p for p in LEGACY.iterdir() if p.suffix in (".txt", ".json", ".ubj", ".model")
               and p.name != "manifest.json")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A fresh cache directory, and every model file big enough to be cached."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("TREEPRUNE_CACHE_DIR", str(folder))
    monkeypatch.setattr(_cache, "MIN_BYTES", 0)
    return folder


def _entries(folder: Path) -> list[Path]:
    return sorted((folder / "parsed").glob("*.pickle")) if (folder / "parsed").exists() else []


def _assert_same(a: Ensemble, b: Ensemble) -> None:
    """Every field equal: arrays of the same dtype and shape, bit for bit (NaN included)."""
    for f in dataclasses.fields(Ensemble):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape, f.name
            assert x.tobytes() == y.tobytes(), f.name
            assert not y.flags.writeable, f.name
        else:
            assert type(x) is type(y) and x == y, f.name


def _no_parse(*args, **kwargs):
    raise AssertionError("parsed although the cache holds the model")


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_cached_load_is_the_parsed_ensemble(path, cache_dir, monkeypatch):
    parsed = tp.load(path, cache=False)
    assert not _entries(cache_dir)
    first = tp.load(path)  # parses, keeps
    assert len(_entries(cache_dir)) == 1
    _assert_same(parsed, first)
    monkeypatch.setattr(tio, "_parse", _no_parse)
    cached = tp.load(path)
    _assert_same(parsed, cached)
    assert cached.source_meta["source_path"] == str(path.resolve())
    # from bytes: the same entry (the key is the content), without a source path
    from_bytes = tp.load(path.read_bytes())
    assert "source_path" not in from_bytes.source_meta
    assert len(_entries(cache_dir)) == 1


def test_cached_model_predicts_as_parsed(cache_dir):
    path = LEGACY / "lgb-3.3.5-binary_categorical.txt"
    parsed = tp.load(path, cache=False)
    tp.load(path)
    cached = tp.load(path)
    X = np.random.default_rng(0).normal(size=(200, parsed.n_features))
    X[::7, 0] = np.nan
    X[:, -1] = np.round(np.abs(X[:, -1]) * 5)
    for output in ("margin", "leaf"):
        assert np.array_equal(parsed.predict(X, output=output), cached.predict(X, output=output),
                              equal_nan=True)


def test_packed_layouts_stay_out_of_entries(cache_dir):
    path = LEGACY / "xgb-1.2.1-binary_logistic.json"
    ens = tp.load(path, cache=False)
    ens.predict(np.zeros((2, ens.n_features)))  # caches its packed layouts on the object
    assert "_packed" in ens.__dict__
    entry = _cache.entry_path(path.read_bytes())
    _cache.write(entry, ens)
    assert "_packed" not in _cache.read(entry).__dict__


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "foreign", "planted"])
def test_damaged_entry_is_a_miss(damage, cache_dir, monkeypatch):
    path = LEGACY / "lgb-3.1.1-multiclass.txt"
    parsed = tp.load(path, cache=False)
    tp.load(path)
    (entry,) = _entries(cache_dir)
    blob = entry.read_bytes()
    marker = cache_dir.parent / "ran"
    bad = {
        "empty": b"",
        "truncated": blob[: len(blob) // 2],
        "garbage": os.urandom(1000),
        "foreign": pickle.dumps({"feature": [1, 2, 3]}),
        # a pickle that would run code when loaded by a plain unpickler
        "planted": pickle.dumps(_Planted(str(marker))),
    }[damage]
    entry.write_bytes(bad)
    got = tp.load(path)
    _assert_same(parsed, got)
    assert not marker.exists()
    # the miss wrote a good entry back
    monkeypatch.setattr(tio, "_parse", _no_parse)
    _assert_same(parsed, tp.load(path))


def test_damaged_array_bytes_are_a_miss(cache_dir):
    """A flipped bit inside an array's bytes (a disk or a crash that left part of a block
    wrong) still unpickles, as another model: the entry's checksum makes it a miss."""
    path = LEGACY / "lgb-3.1.1-multiclass.txt"
    parsed = tp.load(path, cache=False)
    tp.load(path)
    (entry,) = _entries(cache_dir)
    blob = bytearray(entry.read_bytes())
    values = parsed.value.tobytes()
    at = bytes(blob).find(values)
    assert at >= 0
    blob[at + len(values) // 2] ^= 0x10
    entry.write_bytes(bytes(blob))
    _assert_same(parsed, tp.load(path))


class _Planted:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_unwritable_cache_dir_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    # a cache directory below a regular file cannot be made, even by root
    monkeypatch.setenv("TREEPRUNE_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(_cache, "MIN_BYTES", 0)
    path = LEGACY / "xgb-1.6.2-binary_logistic.ubj"
    _assert_same(tp.load(path, cache=False), tp.load(path))
    _assert_same(tp.load(path, cache=False), tp.load(path))


def test_key_is_content_and_code(cache_dir, monkeypatch):
    data = (LEGACY / "xgb-1.2.1-binary_logistic.json").read_bytes()
    key = _cache.entry_path(data)
    assert _cache.entry_path(data) == key
    assert _cache.entry_path(data.replace(b"{", b"{ ", 1)) != key
    monkeypatch.setattr(_cache, "_CODE", [b"another reader"])
    assert _cache.entry_path(data) != key


def test_small_files_and_cache_false_write_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TREEPRUNE_CACHE_DIR", str(tmp_path))
    small = LEGACY / "lgb-3.3.5-binary.txt"
    assert small.stat().st_size < _cache.MIN_BYTES
    tp.load(small)
    monkeypatch.setattr(_cache, "MIN_BYTES", 0)
    tp.load(small, cache=False)
    assert not _entries(tmp_path)


def test_code_fingerprint_covers_the_readers():
    """Every treeprune module that reading any kind of model file runs is in the cache key
    (a fresh process: what other tests imported does not count)."""
    code = (
        "import sys\n"
        "import treeprune as tp\n"
        "from treeprune.io import _cache\n"
        "for p in sys.argv[1:]:\n"
        "    tp.load(p, cache=False)\n"
        "files = {str(f) for f in _cache._code_files()}\n"
        "used = {m.__file__ for n, m in sys.modules.items() if n.startswith('treeprune')}\n"
        "print('\\n'.join(sorted(used - files)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code, *map(str, FILES)], capture_output=True,
                         text=True, env=env, check=True)
    assert out.stdout.strip() == "", f"readers run modules outside the cache key:\n{out.stdout}"


def test_no_home_directory_means_no_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("TREEPRUNE_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(_cache, "MIN_BYTES", 0)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    path = LEGACY / "lgb-3.3.5-binary.txt"
    assert _cache.entry_path(path.read_bytes()) is None
    _assert_same(tp.load(path, cache=False), tp.load(path))


def test_readers_without_sources_mean_no_cache(tmp_path, monkeypatch):
    """An install without the readers' sources cannot tell a changed reader: no cache."""
    monkeypatch.setenv("TREEPRUNE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_cache, "MIN_BYTES", 0)
    monkeypatch.setattr(_cache, "_CODE", [])
    monkeypatch.setattr(_cache, "_code_files", lambda: [tmp_path / "gone.py"])
    path = LEGACY / "lgb-3.3.5-binary.txt"
    assert _cache.entry_path(path.read_bytes()) is None
    _assert_same(tp.load(path, cache=False), tp.load(path))
    assert not _entries(tmp_path)


def test_the_least_recently_used_entries_go_past_the_size_bound(tmp_path, monkeypatch):
    monkeypatch.setenv("TREEPRUNE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_cache, "MIN_BYTES", 0)
    paths = sorted(LEGACY.glob("lgb-*.txt"))[:3]
    assert len(paths) == 3
    entries = []
    for i, path in enumerate(paths):
        tp.load(path)
        entries.append(_cache.entry_path(path.read_bytes()))
        os.utime(entries[-1], ns=(10**18 + i, 10**18 + i))  # written in this order
    tp.load(paths[0])  # a hit: the first entry is now the most recently used
    sizes = {e: e.stat().st_size for e in entries}
    # one byte short of all three: the least recently used (the second) goes, the rest stay
    monkeypatch.setattr(_cache, "MAX_BYTES", sum(sizes.values()) - 1)
    _cache._trim(entries[0].parent, _cache.MAX_BYTES)
    assert [e.exists() for e in entries] == [True, False, True]
    monkeypatch.setattr(_cache, "MAX_BYTES", 0)
    _cache._trim(entries[0].parent, _cache.MAX_BYTES)
    assert not any(e.exists() for e in entries)
    _assert_same(tp.load(paths[1], cache=False), tp.load(paths[1]))  # a miss parses again


def test_a_dead_writers_temporary_file_goes_with_the_next_trim(tmp_path):
    stale, fresh = tmp_path / ".dead.tmp", tmp_path / ".writing.tmp"
    stale.write_bytes(b"x" * 10)
    fresh.write_bytes(b"y" * 10)
    old = 10**9 * (int(time.time()) - _cache.STALE_TEMP_SECONDS - 60)
    os.utime(stale, ns=(old, old))
    _cache._trim(tmp_path, _cache.MAX_BYTES)
    assert not stale.exists() and fresh.exists()  # a writer still at work keeps its file
