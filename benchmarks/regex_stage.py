"""1. Regex stage: ~200 patterns over ~20k messages, the engine's one-pass stage vs a plain loop of re.search."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .common import median, timed
from .corpus import messages, patterns, policy_text


def build_engine(regexes: dict, lists: dict, regex_engine: str = "hyperscan"):  # type: ignore[no-untyped-def]
    from policyengine.engine import Engine

    d = Path(tempfile.mkdtemp(prefix="pe-bench-"))
    (d / "bench.policy").write_text(policy_text(regexes, lists), encoding="utf-8")
    return Engine.from_path(d / "bench.policy", regex_engine=regex_engine), d / "bench.policy"


def run(runs: int = 5, n_messages: int = 20_000) -> dict:
    regexes, lists = patterns()
    msgs = messages(n_messages)
    build = {}
    import time
    t0 = time.perf_counter()
    engine, _ = build_engine(regexes, lists)
    build["engine_build_s"] = round(time.perf_counter() - t0, 2)
    pats = engine.policy.patterns
    rxs = [p.regex for p in pats.values()]
    scan = engine.scanner.raw.scan

    def baseline(ms: list[str]) -> None:  # the plain loop: every pattern searched on every message
        for m in ms:
            for rx in rxs:
                rx.search(m)

    def stage(ms: list[str]) -> None:  # one scan, then exact spans (the evaluator's matcher) for the candidates
        for m in ms:
            for name in scan(m):
                list(pats[name].finditer(m))

    def stage_re(ms: list[str]) -> None:  # one scan, then spans with plain `re` for the candidates
        for m in ms:
            for name in scan(m):
                for _ in pats[name].regex.finditer(m):
                    pass

    def scan_only(ms: list[str]) -> None:
        for m in ms:
            scan(m)

    def evaluate(ms: list[str]) -> None:  # the whole evaluation on this regex-only policy (200 rules)
        for m in ms:
            engine.evaluate(input=m)

    slices = [msgs[i::runs] for i in range(runs)]  # every run a different fifth: all messages are used
    rows: dict[str, list[float]] = {k: [] for k in ("baseline", "stage", "stage_re", "scan_only", "evaluate")}
    for sl in slices:
        rows["baseline"].append(timed(lambda: baseline(sl)))
        rows["stage"].append(timed(lambda: stage(sl)))
        rows["stage_re"].append(timed(lambda: stage_re(sl)))
        rows["scan_only"].append(timed(lambda: scan_only(sl)))
        rows["evaluate"].append(timed(lambda: evaluate(sl)))
    cands = sum(len(scan(m)) for m in slices[0])
    true = sum(1 for m in slices[0] for rx in rxs if rx.search(m))
    per = len(slices[0])
    out = {
        "patterns": len(pats), "regexes": len(regexes), "word_lists": len(lists), "messages": len(msgs),
        "message_chars_mean": round(sum(map(len, msgs)) / len(msgs), 1), "runs": runs, **build,
        "fallbacks": [[f.name, f.reason] for f in engine.scanner.fallbacks],
        "candidates_per_message": round(cands / per, 2), "true_matches_per_message": round(true / per, 2),
        "baseline_msgs_per_s": round(per / median(rows["baseline"]), 1),
        "stage_msgs_per_s": round(per / median(rows["stage"]), 1),
        "ratio_stage": round(median([b / s for b, s in zip(rows["baseline"], rows["stage"])]), 1),
        "ratio_stage_plain_re_spans": round(median([b / s for b, s in zip(rows["baseline"], rows["stage_re"])]), 1),
        "ratio_scan_only": round(median([b / s for b, s in zip(rows["baseline"], rows["scan_only"])]), 1),
        "ratio_full_evaluate": round(median([b / s for b, s in zip(rows["baseline"], rows["evaluate"])]), 1),
        "seconds": {k: [round(x, 3) for x in v] for k, v in rows.items()},
    }
    return out
