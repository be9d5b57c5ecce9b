"""The root of every error policyengine raises on purpose.

`except policyengine.PolicyEngineError` catches all of them; each concrete error also keeps the builtin base it
had before the root existed (ContextError is a ValueError, BundleError a RuntimeError, ...), so older `except`
clauses keep working. This module imports nothing: it is safe to import from anywhere in the package.
"""

from __future__ import annotations

__all__ = ["PolicyEngineError"]


class PolicyEngineError(Exception):
    """Base class of every public policyengine error (see `policyengine.__all__` for the full list)."""
