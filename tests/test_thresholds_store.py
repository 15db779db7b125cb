"""The tabulated validation thresholds are kept on disk between processes: the stored value is
the computed one bit for bit, a process reads it instead of computing, and a damaged,
foreign or unwritable store only means computing again."""
import json
import os

import pytest

from simulator import thresholds as th


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv(th.CACHE_ENV, str(tmp_path))
    th.js_threshold.cache_clear()
    th.linf_threshold.cache_clear()
    yield tmp_path / "thresholds"
    th.js_threshold.cache_clear()
    th.linf_threshold.cache_clear()


def _files(d):
    return sorted(d.glob("*.json")) if d.exists() else []


def test_a_stored_threshold_is_read_back_instead_of_computed(store, monkeypatch):
    fresh = th._js_quantile(400, 3000, 20, 0.01)
    assert th.js_threshold(400, 3000, 20, 0.01) == fresh
    [f] = _files(store)
    assert json.loads(f.read_text())["value"] == fresh          # exactly, through JSON
    th.js_threshold.cache_clear()
    calls = []
    real = th._js_quantile

    def counted(*a):
        calls.append(a)
        return real(*a)
    counted.__name__ = real.__name__
    monkeypatch.setattr(th, "_js_quantile", counted)
    monkeypatch.setattr(th.inspect, "getsource", lambda fn: "changed source")
    th.js_threshold.cache_clear()
    # a different source gives a different key: computed afresh and stored beside it
    assert th.js_threshold(400, 3000, 20, 0.01) == fresh and len(calls) == 1
    th.js_threshold.cache_clear()
    assert th.js_threshold(400, 3000, 20, 0.01) == fresh and len(calls) == 1   # now read
    assert len(_files(store)) == 2


def test_linf_thresholds_are_stored_per_argument(store):
    a = th.linf_threshold(500, (300, 200, 500), 0.01)
    b = th.linf_threshold(500, (300, 201, 499), 0.01)
    assert a == th._linf_quantile(500, (300, 200, 500), 0.01) and b == th._linf_quantile(500, (300, 201, 499), 0.01)
    assert len(_files(store)) == 2
    th.linf_threshold.cache_clear()
    assert th.linf_threshold(500, (300, 200, 500), 0.01) == a


def test_a_damaged_or_foreign_file_is_computed_again(store):
    want = th.js_threshold(300, 2000, 20, 0.01)
    [f] = _files(store)
    for text in ("{not json", json.dumps({"key": "another", "value": 0.5}), json.dumps([1, 2])):
        f.write_text(text)
        th.js_threshold.cache_clear()
        assert th.js_threshold(300, 2000, 20, 0.01) == want
        assert json.loads(f.read_text())["value"] == want          # and stored right again


def test_an_unwritable_store_only_means_computing(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(th.CACHE_ENV, str(blocker))      # a file where the directory should be
    th.js_threshold.cache_clear()
    assert th.js_threshold(300, 2000, 20, 0.01) == th._js_quantile(300, 2000, 20, 0.01)
    th.js_threshold.cache_clear()


def test_the_store_is_off_when_set_empty_and_defaults_under_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(th.CACHE_ENV, "")
    assert th.cache_dir() is None
    monkeypatch.delenv(th.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert th.cache_dir() == os.path.join(str(tmp_path), "mlarch")
