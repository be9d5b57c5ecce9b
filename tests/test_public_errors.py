"""One root for every public error: `except policyengine.PolicyEngineError` catches whatever policyengine raises on
purpose, each error keeps its old builtin base, and `import policyengine` gives all of them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import policyengine
from policyengine import PolicyEngineError

ERRORS = [n for n in policyengine.__all__ if n.endswith("Error")]
# Exceptions that never reach an app: the CLI turns UsageError into exit 2, the server turns ApiError into an HTTP
# error body, multiregex catches Unsupported (the pattern falls back to the exact matcher), and pytest reports
# PolicyTestFailure as a failed policy case.
INTERNAL = {"policyengine.cli.main.UsageError", "policyengine.server.app.ApiError",
            "policyengine.matchers.multiregex.Unsupported", "policyengine.testing.pytest_plugin.PolicyTestFailure"}
OLD_BASES = {"ContextError": ValueError, "LintConfigError": ValueError, "ServerConfigError": ValueError,
             "BundleError": RuntimeError, "ModelLoadError": RuntimeError, "RegexGuardError": RuntimeError,
             "PolicyAssertionError": AssertionError}


@pytest.mark.parametrize("name", ERRORS)
def test_every_exported_error_is_a_policyengine_error(name):
    cls = getattr(policyengine, name)
    assert issubclass(cls, PolicyEngineError)
    assert cls.__name__ == name  # the exported name is the class's own name: no alias hides a second class
    if name in OLD_BASES:
        assert issubclass(cls, OLD_BASES[name])


def test_exported_errors_are_the_ones_the_modules_raise():
    from policyengine.bundle import BundleError
    from policyengine.diagnostics import PolicyError
    from policyengine.evaluator import ContextError
    from policyengine.lint import ConfigError as LintOld
    from policyengine.server.config import ConfigError as ServerOld

    assert policyengine.PolicyError is PolicyError
    assert policyengine.ContextError is ContextError
    assert policyengine.BundleError is BundleError
    # the old module-level names still work, and name two different, unambiguous classes
    assert LintOld is policyengine.LintConfigError and ServerOld is policyengine.ServerConfigError
    assert LintOld is not ServerOld


def test_no_public_error_outside_the_hierarchy():
    """Every exception class defined in the package with a public name is below PolicyEngineError, so a new error
    cannot be added outside it unnoticed."""
    stray = []
    for info in pkgutil.walk_packages(policyengine.__path__, "policyengine."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name
                    and not name.startswith("_") and f"{info.name}.{name}" not in INTERNAL):
                if not issubclass(obj, PolicyEngineError):
                    stray.append(f"{info.name}.{name}")
                elif obj.__name__ not in ERRORS and name == obj.__name__:
                    stray.append(f"{info.name}.{name} (not exported from policyengine)")
    assert not stray


def test_one_except_clause_catches_engine_errors():
    from policyengine import Engine

    with pytest.raises(PolicyEngineError) as bad_policy:
        Engine.from_source("rule r { when input matches nope block }", name="x.policy")
    assert isinstance(bad_policy.value, policyengine.PolicyError)
    e = Engine.from_source("context { tier: string }\nrule r { when context.tier == \"a\" block }", name="x.policy")
    with pytest.raises(PolicyEngineError) as bad_context:
        e.evaluate("hi", context={"tier": 3})
    assert isinstance(bad_context.value, ValueError)
