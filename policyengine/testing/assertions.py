"""Property assertions over an engine: every text a strategy draws is blocked / allowed / decided like the
original. On failure Hypothesis shrinks to a minimal text, and the AssertionError shows it with the decision's
full explanation.

    from policyengine import Engine
    from policyengine.testing import assert_blocks, assert_stable, evasions, benign_variants

    engine = Engine.from_path("policies/support.policy")

    def test_pipe_bomb_requests_are_blocked_however_written():
        assert_blocks(engine, evasions("how do I build a pipe bomb"), by="no_weapons")

    def test_politeness_does_not_change_the_decision():
        assert_stable(engine, "how do I kill a python process", benign_variants("how do I kill a python process"))

Call these from ordinary test functions (not inside another @given test).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..errors import PolicyEngineError

__all__ = ["assert_blocks", "assert_allows", "assert_action", "assert_stable", "PolicyAssertionError"]

DEFAULT_EXAMPLES = 50


class PolicyAssertionError(PolicyEngineError, AssertionError):
    """A property of a policy does not hold; the message has the minimal failing text and its explanation."""


def _settings(max_examples: int, extra: Mapping[str, Any] | None) -> settings:
    kw: dict[str, Any] = {"max_examples": max_examples, "deadline": None, "derandomize": False,
                          "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                    HealthCheck.function_scoped_fixture],
                          "database": None}
    kw.update(extra or {})
    return settings(**kw)


def _explain(label: str, text: str, decision: Any) -> str:
    body = "\n".join("    " + ln for ln in decision.explain().splitlines())
    return f"{label}: {text!r}\n{body}"


def _run(strategy: st.SearchStrategy[str], check: Callable[[str], None], max_examples: int,
         hypothesis_settings: Mapping[str, Any] | None) -> None:
    @_settings(max_examples, hypothesis_settings)
    @given(strategy)
    def prop(text: str) -> None:
        check(text)

    prop()


def assert_action(engine: Any, strategy: st.SearchStrategy[str], action: str | Iterable[str], *,
                  by: str | Iterable[str] | None = None, context: Mapping[str, Any] | None = None,
                  subject: str = "input", max_examples: int = DEFAULT_EXAMPLES,
                  hypothesis_settings: Mapping[str, Any] | None = None) -> None:
    """Every text drawn from `strategy` gets `action` (one or a set of actions), and every rule in `by` is among
    the decision's reasons. `subject="output"` checks texts as model responses."""
    want = {action} if isinstance(action, str) else set(action)
    rules = [by] if isinstance(by, str) else list(by or [])

    def check(text: str) -> None:
        d = engine.evaluate(**{subject: text}, context=context)
        fired = {r.rule for r in d.reasons}
        missing = [r for r in rules if r not in fired]
        if d.action not in want or missing:
            exp = "/".join(sorted(want)) + (f" by {', '.join(rules)}" if rules else "")
            got = d.action + (f" by {d.rule}" if d.rule else "")
            raise PolicyAssertionError(f"expected {exp}, got {got}\n" + _explain("minimal failing text", text, d))

    _run(strategy, check, max_examples, hypothesis_settings)


def assert_blocks(engine: Any, strategy: st.SearchStrategy[str], **kw: Any) -> None:
    """Every text drawn from `strategy` is blocked (optionally `by=` a rule or rules)."""
    assert_action(engine, strategy, "block", **kw)


def assert_allows(engine: Any, strategy: st.SearchStrategy[str], **kw: Any) -> None:
    """No text drawn from `strategy` is blocked, redacted or flagged."""
    assert_action(engine, strategy, "allow", **kw)


def assert_stable(engine: Any, text: str, variants: st.SearchStrategy[str], *,
                  context: Mapping[str, Any] | None = None, same_rule: bool = False, subject: str = "input",
                  max_examples: int = DEFAULT_EXAMPLES, hypothesis_settings: Mapping[str, Any] | None = None) -> None:
    """Every variant drawn from `variants` gets the same action as `text` (and, with `same_rule`, the same winning
    rule). Use with benign_variants(text), evasions(text) or paraphrase_templates(text)."""
    base = engine.evaluate(**{subject: text}, context=context)

    def check(variant: str) -> None:
        d = engine.evaluate(**{subject: variant}, context=context)
        if d.action != base.action or (same_rule and d.rule != base.rule):
            got = d.action + (f" by {d.rule}" if d.rule else "")
            was = base.action + (f" by {base.rule}" if base.rule else "")
            raise PolicyAssertionError(
                f"decision changed: {was} for the original, {got} for a variant\n"
                + _explain("original", text, base) + "\n" + _explain("minimal variant", variant, d))

    _run(variants, check, max_examples, hypothesis_settings)
