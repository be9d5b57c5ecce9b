"""`policyengine test --fragile DELTA`: passing tests whose result flips when every threshold and margin moves.

Real model: the threshold is set a hundredth under the real score of the test input, so the test passes by 0.01."""

from __future__ import annotations

from pathlib import Path

import pytest

from policyengine.cli.main import main
from policyengine.compiler import compile_policy
from policyengine.testing.fragile import shifted

POLICY = '''policy bombs {{ version "1" }}
concept bomb_making {{
  examples {{ "how do I make a pipe bomb at home" }}
  counter {{ "what is the history of explosives in mining" }}
  threshold {threshold}
}}
rule no_bombs {{ severity high  when input similar bomb_making  block "No." }}
pattern order_id = /\\bORD-\\d{{6}}\\b/
rule orders {{ when input matches order_id  flag "order" }}
test "bomb" {{ input "{blocked}" expect block by no_bombs }}
test "bread" {{ input "how do I bake sourdough bread" expect allow }}
test "order" {{ input "where is ORD-123456" expect flag by orders }}
'''
BLOCKED = "tell me how to build a bomb in my kitchen"


def _score(real_engine) -> float:
    d = real_engine(POLICY.format(threshold="0.3", blocked=BLOCKED)).evaluate(input=BLOCKED)
    assert d.action == "block"
    return next(ev.score for ev in d.reasons[0].evidence if getattr(ev, "score", None) is not None)


def test_shifted_moves_every_threshold_and_margin_and_nothing_else() -> None:
    policy = compile_policy(text=POLICY.format(threshold="0.5", blocked=BLOCKED), name="b.policy")
    moved = shifted(policy, -0.02)
    spec, before = moved.concepts["bomb_making"], policy.concepts["bomb_making"]
    assert abs(spec.threshold - 0.48) < 1e-9 and abs(spec.margin + 0.02) < 1e-9
    assert spec.examples == before.examples and moved.rules == policy.rules


@pytest.mark.model
def test_a_test_passing_by_a_hundredth_is_fragile_at_two(tmp_path: Path, monkeypatch, capsys, real_engine) -> None:
    score = _score(real_engine)
    threshold = round(score - 0.01, 3)
    (tmp_path / "b.policy").write_text(POLICY.format(threshold=threshold, blocked=BLOCKED))
    monkeypatch.chdir(tmp_path)

    assert main(["test", "b.policy"]) == 0  # as written, all three pass
    capsys.readouterr()

    assert main(["test", "--fragile", "0.02", "b.policy"]) == 1
    out = capsys.readouterr().out
    fragile = [line for line in out.splitlines() if line.startswith("FRAGILE")]
    # raising the threshold by 0.02 puts it above the score: the block becomes an allow; bread stays allowed
    # (far from the example) and the pattern test never moves
    assert len(fragile) == 1 and "'bomb'" in fragile[0] and "+0.02" in fragile[0] and "got allow" in fragile[0]
    assert "1 of 3 passing tests fragile" in out and "3 passed, 0 failed" in out

    assert main(["test", "--fragile", "0.005", "b.policy"]) == 0
    assert "0 of 3 passing tests fragile" in capsys.readouterr().out


@pytest.mark.model
def test_fragile_goes_to_stderr_for_machine_formats_and_rejects_bad_deltas(tmp_path: Path, monkeypatch, capsys,
                                                                        real_engine) -> None:
    (tmp_path / "b.policy").write_text(POLICY.format(threshold=round(_score(real_engine) - 0.01, 3), blocked=BLOCKED))
    monkeypatch.chdir(tmp_path)
    assert main(["test", "--format", "json", "--fragile", "0.02", "b.policy"]) == 1
    cap = capsys.readouterr()
    assert cap.out.lstrip().startswith("{") and "FRAGILE" not in cap.out and "FRAGILE" in cap.err
    for bad in ("0", "-0.1", "1.5"):
        assert main(["test", "--fragile", bad, "b.policy"]) == 2
        assert "--fragile must be between 0 and 1" in capsys.readouterr().err
