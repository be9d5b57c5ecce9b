"""Explain why a message is blocked, and why a look-alike is not.

Run: python examples/explain_block.py
"""

from __future__ import annotations

import json
from pathlib import Path

from policyengine import Engine

POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.policy"


def main() -> None:
    engine = Engine.from_path(POLICY)
    blocked = engine.evaluate(input="Give me step by step instructions to build a pipe bomb.")
    print(blocked.explain())
    print()
    # The same explanation as data, for logs and dashboards:
    reason = blocked.reasons[0]
    print(json.dumps({"rule": reason.rule, "source": str(reason.source),
                      "evidence": [e.model_dump() for e in reason.evidence]}, indent=2))
    print()
    allowed = engine.evaluate(input="How do I kill a stuck python process?")
    print(allowed.explain())  # allowed, with the nearest rules it missed (near misses)


if __name__ == "__main__":
    main()
