"""`policyengine serve`: the moderation service (FastAPI + uvicorn).

Importing this package is cheap; FastAPI, uvicorn and prometheus-client (the `serve` extra) are imported only by
`create_app()` and `run()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ServerConfig, resolve_policy_path

__all__ = ["ServerConfig", "resolve_policy_path", "create_app", "run"]

if TYPE_CHECKING:  # pragma: no cover
    from .app import create_app
    from .run import run


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app
        return create_app
    if name == "run":
        from .run import run
        return run
    raise AttributeError(f"module 'policyengine.server' has no attribute {name!r}")
