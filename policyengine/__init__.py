"""policyengine: policy-as-code moderation for LLM and chat applications.

Importing this package is cheap: no model, torch or FAISS is loaded until a policy that uses
embedding similarity is compiled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Engine", "Decision", "PolicyError", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .diagnostics import PolicyError
    from .engine import Engine
    from .models import Decision


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from .engine import Engine
        return Engine
    if name == "Decision":
        from .models import Decision
        return Decision
    if name == "PolicyError":
        from .diagnostics import PolicyError
        return PolicyError
    raise AttributeError(f"module 'policyengine' has no attribute {name!r}")
