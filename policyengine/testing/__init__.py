"""policyengine.testing: test policies the way you test code.

- the test runner behind `policyengine test` (runner, case files, coverage, reporters text|json|junit);
- Hypothesis strategies: texts_matching(pattern), benign_variants(text), evasions(text), paraphrase_templates(text);
- assertions: assert_blocks / assert_allows / assert_action / assert_stable (failures shrink to a minimal text and
  show its explanation);
- a pytest plugin (entry point `pytest11`) that collects `.policy` tests and `NAME.cases.yaml` files.

Imports are lazy: `import policyengine.testing` loads neither Hypothesis nor the model.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "texts_matching": "strategies", "benign_variants": "strategies", "evasions": "strategies",
    "paraphrase_templates": "strategies", "PARAPHRASE_TEMPLATES": "strategies",
    "assert_blocks": "assertions", "assert_allows": "assertions", "assert_action": "assertions",
    "assert_stable": "assertions", "PolicyAssertionError": "assertions",
    "Case": "cases", "load_case_file": "cases",
    "discover": "runner", "run": "runner", "CaseResult": "runner",
    "CoverageReport": "coverage",
    "TestReport": "reporters",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'policyengine.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


def __dir__() -> list[str]:
    return __all__
