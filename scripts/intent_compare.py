#!/usr/bin/env python3
"""Compare ways of telling intent from topic on the default pack (issue 8), leave-one-source-out.

Every approach is the whole default pack (regex rules included); only the concept-matching step changes:
  plain        chunk matches when best example >= threshold and beats the best counter-example (the language's default)
  margin       ... and beats it by a uniform margin m
  background   plain, plus the generic benign background set (policyengine/intent/background.txt) as
               implicit counter-examples of every concept
  cues         plain, but a benign framing cue (fiction, history, safety, "what is", computing senses) vetoes
               every concept unless an explicit harmful-intent cue is also present (rules, no training)
  contrastive  topic gate in the base space (best example >= threshold + delta) AND intent gate in the
               contrastive space trained on the pack's own pairs (policyengine/intent/contrastive.py): the
               nearest example beats the nearest counter-example/background sentence by m

Hyper-parameters (m, delta) are chosen leave-one-source-out: for each scored file, on the dev rows of the OTHER
files only; the table reports that choice on the scored file's dev and holdout rows (holdout: scored, never
looked at). Embeddings are cached by text under $POLICYENGINE_CACHE/emb (default ~/.cache/policyengine/emb).

  OMP_NUM_THREADS=1 .venv/bin/python scripts/intent_compare.py [--markdown docs-table.md]
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

FILES = ["coconot_contrast", "jbb_behaviors", "harmbench_val", "notinject", "giskard_injections", "hatecheck"]
SAFE_FILES = ["coconot_contrast", "jbb_behaviors", "notinject", "hatecheck"]
UNSAFE_FILES = ["jbb_behaviors", "harmbench_val", "giskard_injections", "hatecheck"]

BENIGN_FRAME = re.compile(
    r"\b(in (the|a|my) (movie|film|show|series|book|novel|story|game|video game|play|episode|campaign|screenplay)|"
    r"fiction(al)?|fan fiction|role-?playing game|dungeons and dragons|history of|historical|what is|what are|"
    r"why do|why did|how does|how do .{0,20} work|explain the (plot|history)|prevent(ion|ing)?|protect(ing)? "
    r"(myself|my|against|yourself)|safe(ly|ty)|report(ing)?|recogni[sz]e|warning signs|awareness|myth|"
    r"process(es)?|python|linux|bash|calories|weeds)\b", re.I)
HARMFUL_CUE = re.compile(
    r"\b(without (getting )?(caught|detected|noticed|them knowing|consent)|untraceable|undetectable|step[- ]by[- ]step|"
    r"detailed instructions|my (neighbou?r|coworker|ex|wife|husband|boss|teacher|classmate)|convinc\w+|persuad\w+|"
    r"glorif\w+|encourag\w+)\b", re.I)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, c - h), min(1.0, c + h)


TABLE_HEADER = ("| approach | params (chosen without the file) | file | split | FRR (safe blocked) [95% CI] "
                "| catch (unsafe blocked) [95% CI] |", "|---|---|---|---|---|---|")


def cell(k: int, n: int) -> str:
    """"12.3% (4/33) [4.8-27.9]": a rate with its Wilson 95% interval, or "-" when there are no rows."""
    if not n:
        return "-"
    lo, hi = wilson(k, n)
    return f"{100 * k / n:.1f}% ({k}/{n}) [{100 * lo:.1f}-{100 * hi:.1f}]"


def tally(rows: list[dict], decisions: list, blocked: list[bool] | None = None, where: str = "") -> tuple:
    """(safe blocked, safe rows, unsafe blocked, unsafe rows). Stops on evaluation errors: on_error would turn them
    into blocks, and a broken approach must not look like catch."""
    failed = [d.errors[0] for d in decisions if d.errors]
    if failed:
        raise SystemExit(f"{where}: {len(failed)} evaluation errors, first: {failed[0]}")
    if blocked is None:
        blocked = [d.action == "block" for d in decisions]
    safe = [b for r, b in zip(rows, blocked) if r["label"] == "safe"]
    unsafe = [b for r, b in zip(rows, blocked) if r["label"] == "unsafe"]
    return (sum(safe), len(safe), sum(unsafe), len(unsafe))


def objective(res: dict, exclude: str) -> float:
    """What leave-one-source-out maximises: mean catch - 3 x mean false-refusal rate, on the dev rows of every file
    except `exclude` (the file being scored)."""
    frr = [res[f, "dev"][0] / res[f, "dev"][1] for f in SAFE_FILES if f != exclude and res[f, "dev"][1]]
    catch = [res[f, "dev"][2] / res[f, "dev"][3] for f in UNSAFE_FILES if f != exclude and res[f, "dev"][3]]
    return float(np.mean(catch) - 3.0 * np.mean(frr))


class CachingEmbedder:
    """Wraps the real embedder; embeddings cached by sha1(text) on disk so approaches are compared cheaply."""

    def __init__(self, base, path: Path):
        self.base, self.model_id, self.path = base, base.model_id, path
        self.cache: dict[str, np.ndarray] = {}
        if path.exists():
            with np.load(path) as z:
                self.cache = dict(zip(z["keys"].tolist(), z["vecs"]))
        self.dirty = False

    def encode(self, texts):
        keys = [hashlib.sha1(t.encode("utf-8", "surrogatepass")).hexdigest() for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in self.cache}.items())
        if missing:
            vecs = self.base.encode([t for _, t in missing])
            for (k, _), v in zip(missing, vecs):
                self.cache[k] = v
            self.dirty = True
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([self.cache[k] for k in keys]).astype(np.float32)

    def save(self):
        if self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            keys = np.array(list(self.cache))
            np.savez(self.path, keys=keys, vecs=np.stack(list(self.cache.values())))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default=str(ROOT / "policies" / "default.policy"))
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--markdown", help="write the comparison table here")
    ap.add_argument("--approaches", default="plain,margin,background,cues,contrastive")
    ap.add_argument("--weight-decay", type=float, default=None, help="override TrainConfig.weight_decay")
    ap.add_argument("--steps", type=int, default=None, help="override TrainConfig.steps")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from measure_pack import LARGE_DEFAULT_LIMIT, load_rows
    from policyengine import Engine
    from policyengine.compiler import compile_policy
    from policyengine.intent import contrastive as ic
    from policyengine.matchers.embedders import load_embedder
    from policyengine.matchers.similarity import ConceptScores

    import dataclasses

    from policyengine.matchers.embedders import split_model_id

    policy = compile_policy(args.policy)
    # every approach starts from the base model's space (the pack itself may name "<base>+contrastive")
    policy = dataclasses.replace(policy, model=split_model_id(policy.model)[0])
    emb = CachingEmbedder(load_embedder(policy.model), ic.cache_dir().parent / "emb" / "minilm.npz")
    engine = Engine(policy, embedder=emb)
    index = engine._index
    data = {}
    for f in FILES:
        for split in ("dev", "holdout"):
            data[f, split] = load_rows(Path(args.data_dir) / f"{f}.jsonl", split, LARGE_DEFAULT_LIMIT.get(f))

    # --- the contrastive space, trained on the pack's own pairs + background ------------------------------
    concepts = {k: policy.concepts[k] for k in policy.used_concepts}
    bg_texts = ic.background_texts()
    t0 = time.time()
    cfg = ic.TrainConfig()
    if args.weight_decay is not None or args.steps is not None:
        import dataclasses
        cfg = dataclasses.replace(cfg, **{k: v for k, v in (("weight_decay", args.weight_decay),
                                                              ("steps", args.steps)) if v is not None})
    W = ic.train_map({k: (emb.encode(list(c.examples)), emb.encode(list(c.counter))) for k, c in concepts.items()},
                     emb.encode(list(bg_texts)), cfg)
    train_s = time.time() - t0
    bg_vecs = emb.encode(list(bg_texts))
    tuned = {}
    for k, c in concepts.items():
        ex = ic.apply_map(W, emb.encode(list(c.examples)))
        neg = ic.apply_map(W, np.concatenate([emb.encode(list(c.counter)), bg_vecs]))
        tuned[k] = (ex, neg)
    bg_base = {k: bg_vecs for k in concepts}
    tuned_own = {k: (ic.apply_map(W, emb.encode(list(c.examples))),
                     ic.apply_map(W, emb.encode(list(c.counter))) if c.counter else np.zeros((0, 384), np.float32))
                 for k, c in concepts.items()}

    orig_score = index.score

    def make_score(kind: str, m: float, delta: float):
        def score(concept, vecs, mapped=False):
            sc = orig_score(concept, vecs, mapped=mapped)  # base-model space here: mapping is the identity
            spec = policy.concepts[concept]
            if kind == "plain":
                return sc
            if kind == "margin":
                return ConceptScores(sc.ex_score, sc.ex_index, sc.ctr_score + m, sc.ctr_index)
            if kind == "background":
                b = (vecs @ bg_base[concept].T).max(axis=1)
                return ConceptScores(sc.ex_score, sc.ex_index, np.maximum(sc.ctr_score, b), sc.ctr_index)
            if kind == "cues":
                return sc  # applied per text below
            if kind == "contrastive":
                tv = ic.apply_map(W, vecs)
                ex, neg = tuned[concept]
                gate = (tv @ ex.T).max(axis=1) > (tv @ neg.T).max(axis=1) + m
                topic = sc.ex_score >= spec.threshold + delta
                ok = gate & topic
                # express the decision through the evaluator's rule (ex >= threshold and ex > ctr)
                ex_s = np.where(ok, np.maximum(sc.ex_score, spec.threshold), np.minimum(sc.ex_score, spec.threshold - 1e-3))
                return ConceptScores(ex_s, sc.ex_index, np.where(ok, -np.inf, sc.ctr_score), sc.ctr_index)
            if kind == "space":
                # the whole comparison in the contrastive space, against the concept's own counters only
                tv = ic.apply_map(W, vecs)
                ex, ctr = tuned_own[concept]
                es = tv @ ex.T
                cs = tv @ ctr.T if len(ctr) else np.full((len(tv), 1), -np.inf, dtype=np.float32)
                ex_s = es.max(axis=1) - delta  # threshold + delta <=> score - delta >= threshold
                return ConceptScores(ex_s, es.argmax(axis=1), cs.max(axis=1) + m - delta, cs.argmax(axis=1))
            raise ValueError(kind)
        return score

    def run(kind: str, m: float = 0.0, delta: float = 0.0, files=FILES, splits=("dev", "holdout")):
        index.score = make_score(kind, m, delta)
        out = {}
        for f in files:
            for split in splits:
                rows = data[f, split]
                texts = [r["text"] for r in rows]
                ds = engine.evaluate_many(texts)
                blocked = None
                if kind == "cues":
                    blocked = []
                    for t, d in zip(texts, ds):
                        sim_only = d.action == "block" and all(
                            e.kind == "similarity" for r in d.reasons if r.action == "block" for e in r.evidence)
                        veto = BENIGN_FRAME.search(t) and not HARMFUL_CUE.search(t)
                        blocked.append(d.action == "block" and not (sim_only and veto))
                out[f, split] = tally(rows, ds, blocked, where=f"{kind} on {f}/{split}")
        index.score = orig_score
        return out

    grids = {"plain": [(0.0, 0.0)], "cues": [(0.0, 0.0)], "background": [(0.0, 0.0)],
             "margin": [(m, 0.0) for m in (0.0, 0.03, 0.06, 0.10)],
             "contrastive": [(m, d) for m in (0.0, 0.03, 0.06) for d in (-0.06, -0.03, 0.0)],
             "space": [(m, d) for m in (0.0, 0.03) for d in (-0.03, 0.0, 0.03, 0.06)]}

    table = []
    for kind in [a.strip() for a in args.approaches.split(",") if a.strip()]:
        results = {}
        for m, d in grids[kind]:
            results[m, d] = run(kind, m, d)
        for f in FILES:
            best = max(results, key=lambda p: objective(results[p], f))
            r = results[best]
            table.append((kind, best, f, r[f, "dev"], r[f, "holdout"]))
        emb.save()
        print(f"done {kind}", file=sys.stderr, flush=True)

    lines = list(TABLE_HEADER)
    for kind, (m, d), f, dev, hold in table:
        for split, (fs, ns, cu, nu) in (("dev", dev), ("holdout", hold)):
            params = {"margin": f"m={m:g}", "contrastive": f"m={m:g} delta={d:g}",
                      "space": f"m={m:g} delta={d:g}"}.get(kind, "-")
            lines.append(f"| {kind} | {params} | {f} | {split} | {cell(fs, ns)} | {cell(cu, nu)} |")
    text = "\n".join(lines)
    print(text)
    print(f"\ncontrastive map training: {train_s:.2f} s (1 thread)")
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
