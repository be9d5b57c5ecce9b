"""Where policyengine keeps what it builds once and reuses across processes (trained intent maps, fine-tuned models,
exported ONNX models): one root for all of them, each use in its own sub-folder.

The root is $POLICYENGINE_CACHE if set, else $XDG_CACHE_HOME/policyengine (XDG Base Directory spec: only an
absolute $XDG_CACHE_HOME counts), else ~/.cache/policyengine. Nothing here creates folders or imports anything heavy.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> Path:
    """The cache root, or a sub-folder of it (`cache_dir("intent")`); read from the environment on every call."""
    env = os.environ.get("POLICYENGINE_CACHE")
    if env:
        root = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
        root = base / "policyengine"
    return root.joinpath(*parts)
