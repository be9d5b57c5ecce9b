"""5. Peers on the same patterns and messages: LLM Guard's Regex and BanSubstrings scanners and Presidio's
PatternRecognizer vs the engine's one-pass regex stage. Run inside a separate virtualenv (benchmarks/.peers-venv):
llm-guard pins transformers/tokenizers versions that would downgrade the project's own. Both sides run in that one
process; ratios are medians of per-run ratios.

Usage (from the repo root, by `python -m benchmarks`): PEERS_PY -m benchmarks.peers --json OUT
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time


def measure(runs: int = 3, n_messages: int = 2000) -> dict:
    from .common import median, timed
    from .corpus import messages, patterns
    from .regex_stage import build_engine

    regexes, lists = patterns()
    msgs = messages(20_000)[::10][:n_messages]
    out: dict = {"messages": len(msgs), "runs": runs, "regexes": len(regexes), "word_lists": len(lists)}
    eng_rx, _ = build_engine(regexes, {})
    eng_words, _ = build_engine({"_never": r"\A\b\Z"}, lists)

    def stage(engine):  # type: ignore[no-untyped-def]
        pats, scan = engine.policy.patterns, engine.scanner.raw.scan

        def go() -> None:
            for m in msgs:
                for name in scan(m):
                    list(pats[name].finditer(m))
        return go

    peers: dict = {}
    errors: dict = {}
    try:
        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
        from llm_guard.input_scanners import BanSubstrings, Regex
        from llm_guard.input_scanners.regex import MatchType

        rx_scanner = Regex(patterns=list(regexes.values()), is_blocked=True, match_type=MatchType.SEARCH,
                           redact=False)
        words = sorted({w for ws in lists.values() for w in ws})
        ban = BanSubstrings(substrings=words, match_type="word", case_sensitive=False, redact=False,
                            contains_all=False)
        peers["llm_guard_regex"] = (lambda: [rx_scanner.scan(m) for m in msgs], stage(eng_rx))
        peers["llm_guard_ban_substrings"] = (lambda: [ban.scan(m) for m in msgs], stage(eng_words))
        import importlib.metadata as md

        out["llm_guard_version"] = md.version("llm-guard")
    except Exception as e:  # noqa: BLE001 - report, don't crash the other peers
        errors["llm_guard"] = f"{type(e).__name__}: {e}"
    try:
        from presidio_analyzer import Pattern, PatternRecognizer

        rec = PatternRecognizer(supported_entity="BENCH", patterns=[Pattern(n, rx, 0.5) for n, rx in regexes.items()])
        peers["presidio_pattern_recognizer"] = (lambda: [rec.analyze(m, entities=["BENCH"]) for m in msgs],
                                                stage(eng_rx))
        import importlib.metadata as md

        out["presidio_analyzer_version"] = md.version("presidio-analyzer")
    except Exception as e:  # noqa: BLE001
        errors["presidio"] = f"{type(e).__name__}: {e}"
    for name, (peer, ours) in peers.items():
        peer(), ours()
        p_s, o_s = [], []
        for _ in range(runs):
            p_s.append(timed(peer))
            o_s.append(timed(ours))
        out[name] = {"peer_msgs_per_s": round(len(msgs) / median(p_s), 1),
                     "engine_msgs_per_s": round(len(msgs) / median(o_s), 1),
                     "ratio": round(median([p / o for p, o in zip(p_s, o_s)]), 1)}
    out["errors"] = errors
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=2000)
    a = ap.parse_args()
    t0 = time.time()
    res = measure(a.runs, a.messages)
    res["seconds_total"] = round(time.time() - t0, 1)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
