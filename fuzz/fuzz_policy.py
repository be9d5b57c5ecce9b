"""Fuzz the parser and the checker: only PolicyError, with a position for every diagnostic, may escape.

Two Hypothesis-driven sources, run as many cases as asked (the `make fuzz` long run: >= 100k):
  1. texts generated from the grammar itself (hypothesis.extra.lark.from_lark), then mutated;
  2. real policy files (policies/, examples/, tests/golden/errors/) cut into windows of top-level items and
     mutated (insert / delete / duplicate / swap characters and tokens, splice two files).
Usage: .venv/bin/python fuzz/fuzz_policy.py --examples 100000 [--seed N]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.lark import from_lark  # noqa: E402

from policyengine.compiler import compile_policy  # noqa: E402
from policyengine.diagnostics import PolicyError  # noqa: E402
from policyengine.syntax.parser import grammar  # noqa: E402

_TOP = re.compile(r"(?m)^(?=(?:policy|context|import|pattern|words|concept|rule|test)\b)")
TOKENS = ['{', '}', '(', ')', '"', '/', '\\', '#', '\n', '\x00', 'é', '\ud800', ',', '.', '=', ':', '[', ']', 'rule',
          'when', 'normalize', 'normalize [leet]', 'normalize [', 'matches', 'similar', 'and', 'or', 'not', 'block',
          'allow overrides', 'threshold 2', 'margin -1', '/(a+)+$/', '/[/', '"\\q"', 'context.x', '1e9', '\u202e', '\t']


def corpus() -> list[str]:
    files = sorted([*ROOT.glob("policies/*.policy"), *ROOT.glob("examples/**/*.policy"),
                    *ROOT.glob("tests/golden/errors/*.policy")])
    items: list[str] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        items += [p for p in _TOP.split(text) if p.strip()]
    return items


ITEMS = corpus()


@st.composite
def mutate(draw, base: st.SearchStrategy[str]) -> str:
    text = draw(base)
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "duplicate", "swap", "splice"]))
        if op == "insert":
            text = text[:pos] + draw(st.sampled_from(TOKENS)) + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 12)):]
        elif op == "duplicate":
            text = text[:pos] + text[pos:pos + draw(st.integers(1, 30))] + text[pos:]
        elif op == "swap" and pos + 1 < len(text):
            text = text[:pos] + text[pos + 1] + text[pos] + text[pos + 2:]
        elif op == "splice":
            text = text[:pos] + draw(st.sampled_from(ITEMS))
    return text


real_windows = st.lists(st.sampled_from(ITEMS), min_size=1, max_size=4).map("\n".join)
STRATEGY = st.one_of(mutate(from_lark(grammar(), start="start")), mutate(real_windows))


def check(text: str) -> str:
    """Compile; returns 'ok' or 'error'. Anything but PolicyError, or a diagnostic without a position, raises."""
    try:
        compile_policy(text=text, name="fuzz.policy")
        return "ok"
    except PolicyError as e:
        assert e.diagnostics, "PolicyError without diagnostics"
        for d in e.diagnostics:
            assert d.span.line >= 1 and d.span.column >= 1, f"diagnostic without a position: {d}"
        e.render()
        return "error"


def cheap_mutation(text: str, rng: random.Random) -> str:
    """One random edit (the long run derives many cases from each Hypothesis-drawn text this way)."""
    pos = rng.randrange(len(text) + 1)
    op = rng.randrange(4)
    if op == 0:
        return text[:pos] + rng.choice(TOKENS) + text[pos:]
    if op == 1:
        return text[:pos] + text[pos + rng.randint(1, 12):]
    if op == 2:
        return text[:pos] + text[pos:pos + rng.randint(1, 30)] + text[pos:]
    return text[:pos] + rng.choice(ITEMS) + text[pos:]


def run(examples: int, seed_value: int, per_draw: int = 1) -> dict:
    """`examples` compiled cases in all: Hypothesis draws examples / per_draw texts, each compiled as drawn and
    then with per_draw - 1 further random edits."""
    counts = {"ok": 0, "error": 0}
    draws = max(1, -(-examples // per_draw))

    @seed(seed_value)
    @settings(max_examples=draws, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(STRATEGY, st.randoms(use_true_random=False))
    def prop(text: str, rng: random.Random) -> None:
        counts[check(text)] += 1
        for _ in range(per_draw - 1):
            text = cheap_mutation(text, rng)
            counts[check(text)] += 1

    t = time.perf_counter()
    prop()
    counts["seconds"] = round(time.perf_counter() - t, 1)  # type: ignore[assignment]
    return counts


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=int(os.environ.get("PE_FUZZ_CASES", "100000")))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-draw", type=int, default=10, help="cases derived from each Hypothesis-drawn text")
    args = ap.parse_args()
    counts = run(args.examples, args.seed, args.per_draw)
    total = counts["ok"] + counts["error"]
    print(f"fuzz: {total} policies compiled ({counts['ok']} valid, {counts['error']} rejected with positioned "
          f"PolicyError), 0 other exceptions, {counts['seconds']} s, seed {args.seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
