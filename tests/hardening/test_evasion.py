"""Quick evasion suite (the full one is `make evasion`): the pack's own tests that expect a block, under every
evasion, with the real model. Hypothesis draws the seeds (which words are perturbed, and how)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyengine.compiler import compile_policy
from policyengine.engine import Engine
from policyengine.normalize.probes import EVASIONS, perturb

pytestmark = pytest.mark.model

TARGET = 0.95


@pytest.fixture(scope="module")
def pack():
    policy = compile_policy("policies/default.policy")
    engine = Engine(policy)  # the pack's own model (loaded once per process)
    texts = [t.input.value for t in policy.tests if t.input is not None and t.expect == "block" and not t.context]
    base = [d.action == "block" for d in engine.evaluate_many(texts)]
    return engine, [t for t, b in zip(texts, base) if b]


@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_every_evasion_keeps_95_percent_of_the_pack_tests_blocked(pack, seed):
    engine, texts = pack
    assert len(texts) >= 20
    rates = {}
    for ev in EVASIONS:
        evaded = [perturb(t, [ev], random.Random(f"{seed}:{i}"), 0.5) for i, t in enumerate(texts)]
        rates[ev] = sum(d.action == "block" for d in engine.evaluate_many(evaded)) / len(texts)
    low = {k: round(v, 3) for k, v in rates.items() if v < TARGET}
    assert not low, f"evasions below {TARGET:.0%} of the unperturbed blocks: {low}"
