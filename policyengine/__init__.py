"""policyengine: policy-as-code moderation for LLM and chat applications.

Importing this package is cheap: no model, torch or FAISS is loaded until a policy that uses
embedding similarity is compiled. Every name below except `PolicyEngineError` is loaded on first use.

Errors: every error policyengine raises on purpose is a `PolicyEngineError`; each also keeps the builtin base it
had before (ContextError and the two config errors are ValueErrors; BundleError, ModelLoadError and
RegexGuardError are RuntimeErrors; PolicyAssertionError is an AssertionError).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import PolicyEngineError

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access, so `import policyengine` stays cheap)
_LAZY = {
    "Engine": ".engine",
    "Decision": ".models",
    "Limits": ".evaluator",
    # errors
    "PolicyError": ".diagnostics",          # the policy does not compile (every diagnostic, file:line:col)
    "ContextError": ".evaluator",           # the app's context does not fit the policy's declared types
    "BundleError": ".bundle",               # a compiled bundle cannot be used (unreadable, stale, other model)
    "ArtifactError": ".runtime",            # a compiled-policy artifact (cache entry or bundle part) is unreadable
    "ModelLoadError": ".matchers.embedders",  # the policy's embedding model cannot be loaded
    "RegexGuardError": ".normalize.saferegex",  # a pattern without a linear-time engine ran past its time guard
    "FormatError": ".fmt",                  # `fmt` on a file that does not parse
    "SelfCheckError": ".fmt",               # `fmt` could not prove its output equivalent (a formatter bug)
    "LintConfigError": ".lint.config",      # [tool.policyengine.lint] is unusable
    "ServerConfigError": ".server.config",  # a server setting is unusable
    "DataError": ".measure.data",           # a data file for score/calibrate cannot be read
    "PolicyAssertionError": ".testing.assertions",  # a property test of a policy failed (needs hypothesis)
}

__all__ = ["Engine", "Decision", "Limits", "PolicyEngineError", "PolicyError", "ContextError", "BundleError",
           "ArtifactError", "ModelLoadError", "RegexGuardError", "FormatError", "SelfCheckError", "LintConfigError",
           "ServerConfigError", "DataError", "PolicyAssertionError", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .bundle import BundleError
    from .diagnostics import PolicyError
    from .engine import Engine
    from .evaluator import ContextError, Limits
    from .fmt import FormatError, SelfCheckError
    from .lint.config import LintConfigError
    from .matchers.embedders import ModelLoadError
    from .runtime import ArtifactError
    from .measure.data import DataError
    from .models import Decision
    from .normalize.saferegex import RegexGuardError
    from .server.config import ServerConfigError
    from .testing.assertions import PolicyAssertionError


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'policyengine' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
