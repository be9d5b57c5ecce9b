"""Trade-off tables for trained-concept candidates of the default pack, leave-one-file-out.

For each candidate (a logistic head trained on a selection of rows of policies/data, the way `train` clauses would),
every file of ../shared/data is scored by a head trained WITHOUT that file, combined with the pack's own decision
on the row:
  - gate:   the pack blocks, and if the deciding rule is one of the gated rules, the head must also say p >= t;
  - or:     the pack blocks, or the head says p >= t.
Rows are embedded whole in the base MiniLM space (the engine's trained concepts use the +contrastive space and
request-sized chunks, so an engine run, `policyengine score --leave-out`, is the final word for what ships; this
script is the quick scan that chooses what to try). The pack's per-row decisions come from one engine pass of the
pack with its trained concepts taken out (benchmarks/trained.py), so "pack" is the baseline every candidate adds to.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/trained_tradeoffs.py [--data-dir ../shared/data] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILES = ["harmbench_val", "jbb_behaviors", "coconot_contrast", "coconot_noncompliance", "notinject",
         "giskard_injections", "hatecheck", "ailuminate_skilled", "cyber_intent", "arena_hard"]
EVERYTHING_BUT_HATE = {f: None for f in FILES if f != "hatecheck"} | {"authored": None}
CANDIDATES = {
    # name: (training selection {file: categories or None}, mode, gated rules, thresholds)
    "global head OR pack": (EVERYTHING_BUT_HATE, "or", [], [0.9, 0.95, 0.98]),
    "security gate": ({"cyber_intent": None, "authored": ["defensive_security", "offensive_security", "ordinary"],
                       "jbb_behaviors": ["Malware/Hacking"], "harmbench_val": ["cybercrime_intrusion"],
                       "arena_hard": None}, "gate", ["hacking_and_malware", "offensive_code"], [0.1, 0.3, 0.5]),
    "hate gate": ({"hatecheck": None, "ailuminate_skilled": ["hte"], "jbb_behaviors": ["Harassment/Discrimination"],
                   "authored": ["ordinary", "professional"]}, "gate", ["hate_speech", "hate_generation"],
                  [0.1, 0.3, 0.5]),
    "jailbreak gate (shipped)": ({"giskard_injections": None, "authored": ["jailbreak", "ordinary"],
                                  "notinject": None, "arena_hard": None}, "gate", ["jailbreak_persona"],
                                 [0.3, 0.5, 0.7]),
}


def load(data_dir: Path) -> list[dict]:
    rows = []
    for f in FILES:
        for line in (data_dir / f"{f}.jsonl").read_text(encoding="utf-8").splitlines():
            rows.append({**json.loads(line), "file": f})
    for line in (ROOT / "policies" / "data" / "authored.jsonl").read_text(encoding="utf-8").splitlines():
        rows.append({**json.loads(line), "file": "authored"})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--json", help="also write the tables as JSON")
    args = ap.parse_args(argv)

    from sklearn.linear_model import LogisticRegression

    from policyengine.engine import Engine
    from policyengine.evaluator import embeddable
    from policyengine.matchers.heads import row_vectors
    from policyengine.normalize import normalize

    import tempfile

    from benchmarks.trained import _untrained_copy

    rows = load(Path(args.data_dir))
    with tempfile.TemporaryDirectory() as tmp:  # the pack without its trained concepts: what candidates add to
        engine = Engine.from_path(_untrained_copy(Path(tmp)))
    emb = engine._embedder
    pipeline = engine.policy.normalize
    texts = [normalize(r["text"], pipeline).text for r in rows]
    X = row_vectors(texts, lambda ts: emb.encode([embeddable(t) for t in ts]),
                    f"{emb.model_id}|{','.join(pipeline)}")
    decisions = engine.evaluate_many([r["text"] for r in rows])
    block = np.array([d.action == "block" for d in decisions])
    rule = np.array([str(d.rule) for d in decisions])
    y = np.array([r["label"] == "unsafe" for r in rows])
    F = np.array([r["file"] for r in rows])
    cat = np.array([str(r.get("category")) for r in rows])

    def weights(idx: np.ndarray) -> np.ndarray:
        keys = list(zip(F[idx], y[idx]))
        c = Counter(keys)
        w = np.array([c[k] ** -0.5 for k in keys])
        for side in (True, False):
            m = y[idx] == side
            if m.any():
                w[m] *= (len(idx) / 2) / w[m].sum()
        return w

    def rate(b: np.ndarray, yy: np.ndarray) -> str:
        fr = f"{100 * b[~yy].mean():.1f}" if (~yy).any() else "–"
        ca = f"{100 * b[yy].mean():.1f}" if yy.any() else "–"
        return f"{fr} / {ca}"

    out: dict = {}
    for name, (selection, mode, gated, ths) in CANDIDATES.items():
        chosen = np.zeros(len(rows), bool)
        for f, cats in selection.items():
            chosen |= (F == f) & (np.isin(cat, cats) if cats is not None else True)
        print(f"\n## {name}: {mode}, trained on {int(chosen.sum())} rows"
              + (f", gating {', '.join(gated)}" if gated else ""))
        print("| file | pack (FRR % / catch %) | " + " | ".join(f"p >= {t}" for t in ths) + " |")
        print("|---|---|" + "---|" * len(ths))
        out[name] = {}
        for f in FILES:
            idx = np.flatnonzero(chosen & (F != f))
            m = F == f
            yy, pk = y[m], block[m]
            if len(set(y[idx].tolist())) < 2:  # without this file, the selection has one label: no head
                out[name][f] = {"pack": rate(pk, yy), "note": "no head: one label left"}
                print(f"| {f} | {rate(pk, yy)} | " + " | ".join("n/a" for _ in ths) + " |")
                continue
            head = LogisticRegression(C=4.0, max_iter=3000).fit(X[idx], y[idx], sample_weight=weights(idx))
            p = head.predict_proba(X[m])[:, 1]
            cells = []
            for t in ths:
                b = (pk & (~np.isin(rule[m], gated) | (p >= t))) if mode == "gate" else (pk | (p >= t))
                cells.append(rate(b, yy))
            out[name][f] = {"pack": rate(pk, yy), **{str(t): c for t, c in zip(ths, cells)}}
            print(f"| {f} | {rate(pk, yy)} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
