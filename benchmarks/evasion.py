"""Evasion suite: how much of the pack's catch rate survives each evasion (and combinations of them).

For every unsafe row of ../shared/data (a fixed, seeded sample) and every `test` input of the pack that expects a
non-allow action, each evasion of policyengine.normalize.probes rewrites the words of the text (each word of >= 3
letters with probability --p, at least one; seeded per row). The catch rate of the perturbed texts is reported
relative to the catch rate of the unperturbed texts, for the pack as shipped (with its `normalize [...]` header)
and for the same pack without normalisation. False refusals (block) on the safe rows are compared the same way.

    .venv/bin/python benchmarks/evasion.py                 # full run (make evasion), writes a markdown table
    .venv/bin/python benchmarks/evasion.py --quick         # small sample
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from policyengine.compiler import compile_policy  # noqa: E402
from policyengine.engine import Engine  # noqa: E402
from policyengine.normalize.probes import EVASIONS, perturb  # noqa: E402

DATA = Path(os.environ.get("PE_SHARED_DATA", ROOT.parent / "shared" / "data"))
PACK = ROOT / "policies" / "default.policy"
COMBOS = [("leet", "homoglyph"), ("zero_width", "case"), ("leet", "letter_spacing"),
          ("fullwidth", "soft_hyphen"), ("homoglyph", "zero_width", "leet"), ("diacritics", "bidi_controls", "case")]
# unsafe rows per file (None: all) and safe rows per file, for the full and the quick run
FULL = {"jbb_behaviors": (None, None), "harmbench_val": (None, 0), "giskard_injections": (None, 0),
        "hatecheck": (150, 150), "presidio_pii": (100, 0), "coconot_contrast": (0, None), "notinject": (0, None)}
QUICK = {"jbb_behaviors": (40, 40), "harmbench_val": (30, 0), "giskard_injections": (20, 0), "hatecheck": (40, 40),
         "presidio_pii": (20, 0), "coconot_contrast": (0, 60), "notinject": (0, 60)}


def load_rows(sizes: dict, seed: int) -> tuple[list[dict], list[dict]]:
    unsafe, safe = [], []
    for name, (n_unsafe, n_safe) in sizes.items():
        path = DATA / f"{name}.jsonl"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        rng = random.Random(f"{seed}:{name}")
        for label, n, out in (("unsafe", n_unsafe, unsafe), ("safe", n_safe, safe)):
            pool = [r for r in rows if r["label"] == label]
            if n is not None:
                pool = rng.sample(pool, min(n, len(pool)))
            out += pool
    return unsafe, safe


def pack_tests() -> list[dict]:
    policy = compile_policy(PACK)
    return [{"id": f"pack:{t.name.value}", "text": t.input.value, "label": "unsafe"}
            for t in policy.tests if t.input is not None and t.expect != "allow" and not t.context]


def engines(embedder) -> dict[str, Engine]:
    text = PACK.read_text(encoding="utf-8")
    plain = re.sub(r"(?m)^\s*normalize\s*\[[^\]]*\].*$", "", text, count=1)
    assert plain != text, "the pack's header declares no `normalize [...]`"
    return {"normalised": Engine(compile_policy(PACK), embedder=embedder),
            "without normalisation": Engine(compile_policy(PACK, text=plain), embedder=embedder)}


def caught(engine: Engine, texts: list[str]) -> list[bool]:
    return [d.action != "allow" for d in engine.evaluate_many(texts)]


def blocked(engine: Engine, texts: list[str]) -> list[bool]:
    return [d.action == "block" for d in engine.evaluate_many(texts)]


def run(quick: bool, p: float, seed: int, combos: bool = True) -> dict:
    from policyengine.matchers.embedders import load_embedder

    unsafe, safe = load_rows(QUICK if quick else FULL, seed)
    unsafe += pack_tests()
    t0 = time.perf_counter()
    embedder = load_embedder(compile_policy(PACK).model, threads=int(os.environ.get("POLICYENGINE_THREADS", "1")))
    engs = engines(embedder)
    texts = [r["text"] for r in unsafe]
    evasions = [(e,) for e in EVASIONS] + (COMBOS if combos else [])
    result: dict = {"rows_unsafe": len(unsafe), "rows_safe": len(safe), "p": p, "seed": seed, "engines": {}}
    for name, eng in engs.items():
        base = caught(eng, texts)
        n_base = sum(base)
        per: dict[str, dict] = {}
        for ev in evasions:
            if name != "normalised" and len(ev) > 1:
                continue
            pert = [perturb(t, list(ev), random.Random(f"{seed}:{i}:{'+'.join(ev)}"), p) for i, t in enumerate(texts)]
            got = caught(eng, pert)
            kept = sum(1 for b, g in zip(base, got) if b and g)
            per["+".join(ev)] = {"caught": sum(got), "relative": sum(got) / n_base if n_base else 0.0,
                                 "kept": kept / n_base if n_base else 0.0}
        fr = blocked(eng, [r["text"] for r in safe])
        result["engines"][name] = {"caught_unperturbed": n_base, "catch_rate_unperturbed": n_base / len(texts),
                                   "evasions": per, "false_refusals": sum(fr),
                                   "false_refusal_rate": sum(fr) / len(safe) if safe else 0.0}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def table(res: dict) -> str:
    norm, plain = res["engines"]["normalised"], res["engines"]["without normalisation"]
    lines = [f"unsafe rows: {res['rows_unsafe']} (shared data sample + pack tests), safe rows: {res['rows_safe']}, "
             f"each word perturbed with p={res['p']}, seed {res['seed']}",
             "",
             f"| evasion | caught / caught unperturbed (normalised pack) | still caught of those caught unperturbed "
             f"| same, pack without normalisation |",
             "|---|---|---|---|",
             f"| (none) | {norm['caught_unperturbed']} / {norm['caught_unperturbed']} = 100.0% | 100.0% | "
             f"{plain['caught_unperturbed']} / {plain['caught_unperturbed']} = 100.0% |"]
    for ev, r in norm["evasions"].items():
        pr = plain["evasions"].get(ev)
        other = f"{pr['caught']} / {plain['caught_unperturbed']} = {100 * pr['relative']:.1f}%" if pr else "—"
        lines.append(f"| {ev} | {r['caught']} / {norm['caught_unperturbed']} = {100 * r['relative']:.1f}% | "
                     f"{100 * r['kept']:.1f}% | {other} |")
    lines += ["", f"catch rate unperturbed: normalised {100 * norm['catch_rate_unperturbed']:.1f}%, without "
                  f"{100 * plain['catch_rate_unperturbed']:.1f}%",
              f"false refusals on safe rows: normalised {norm['false_refusals']} / {res['rows_safe']} "
              f"({100 * norm['false_refusal_rate']:.1f}%), without {plain['false_refusals']} / {res['rows_safe']} "
              f"({100 * plain['false_refusal_rate']:.1f}%)",
              f"({res['seconds']} s)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--p", type=float, default=0.5, help="probability that a word is perturbed (default 0.5)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"evasion: shared data not found at {DATA} (set PE_SHARED_DATA)", file=sys.stderr)
        return 2
    res = run(args.quick, args.p, args.seed)
    print(table(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
