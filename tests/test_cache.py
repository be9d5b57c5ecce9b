"""One cache root for everything policyengine builds once (policyengine/cache.py), each use in its own folder."""

from __future__ import annotations

from pathlib import Path

from policyengine.cache import cache_dir
from policyengine.intent import contrastive, finetune
from policyengine.matchers import onnx_backend


def test_policyengine_cache_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("POLICYENGINE_CACHE", str(tmp_path / "pe"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "pe"
    assert cache_dir("intent") == tmp_path / "pe" / "intent"


def test_xdg_cache_home_then_home(monkeypatch, tmp_path):
    monkeypatch.delenv("POLICYENGINE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "policyengine"
    for ignored in ("", "relative/cache"):  # the XDG spec: unset, empty or relative means the default
        monkeypatch.setenv("XDG_CACHE_HOME", ignored)
        assert cache_dir() == Path.home() / ".cache" / "policyengine"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("POLICYENGINE_CACHE", "")
    assert cache_dir() == Path.home() / ".cache" / "policyengine"


def test_every_use_is_a_folder_of_the_one_root(monkeypatch, tmp_path):
    for env in ({"POLICYENGINE_CACHE": str(tmp_path / "pe")}, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}):
        monkeypatch.delenv("POLICYENGINE_CACHE", raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        root = cache_dir()
        assert contrastive.cache_dir() == root / "intent"
        assert finetune.cache_dir() == root / "finetune"
        assert onnx_backend.cache_dir() == root  # exports go to root / "onnx" / <digest>
