#!/usr/bin/env python3
"""More candidates for issue 8 (intent, not topic), measured against the pack's own test cases.

Each experiment prints one markdown table: false refusals and catch (Wilson 95% intervals) per data file, plus
how many of the pack's own test cases (`policyengine test`, todo cases left out) fail. Rows are split as in
scripts/measure_pack.py (sha256 of the row id; hatecheck: the fixed 1,000-row sample per split).

  counters    The language's rule (an example must beat the concept's *own* counter-examples) against *shared*
              counters: every counter-example of every concept, plus the background set
              (policyengine/intent/background.txt), counts as a counter-example of every concept. Thresholds as
              written, shifted by --deltas. Dev rows only (a candidate, not a result). For "+contrastive" the map is
              retrained with the shared counters; for "+finetune" the tuned model is the pack's own.
  pairs       "+finetune" trained on more pairs than the policy's own (--extra): `negatives` adds, per example, two
              dissimilar pairs with benign text of *other* concepts (their counters, the background set);
              `anchors` adds, per example, two pairs of random policy sentences labelled with the base model's
              cosine (distillation toward the base space). Thresholds: `calibrate --from-policy` minus --deltas.
              Dev rows only.
  data-loso   "+finetune" trained on the policy's pairs plus look-alike pairs derived from the dev rows of the
              *other* data files (issue 8's "look-alike pairs you can derive from public data"), one model per
              left-out file, scored on that file's dev and holdout rows. From each training row (at most --cap
              per file): an unsafe row is paired as similar with its nearest pack example (base space) and another
              example of that concept; a safe row as dissimilar with its two nearest pack examples; jbb's
              topic-matched rows i (harmful, benign) as dissimilar. Thresholds: `calibrate --from-policy` minus
              --deltas.
  neighbours  Round five. A chunk's score for a concept is the *mean* similarity of its --k nearest examples (and,
              against it, the mean of its --counter-k nearest counter-examples) instead of the single nearest one, in
              the pack's own space, with the nearest example still named in the explanation. Mean-of-k is lower
              than the max, so thresholds are as written minus --deltas. --splits dev (default) or dev,holdout.
  heads       Round five. A logistic-regression head per concept (SetFit's second half), in the pack's own space:
              the concept's examples against all the benign text of the policy (every counter-example, the
              background set), classes balanced. A chunk matches when the head's probability is at least each
              of --cuts (the nearest example is still named). --splits as for neighbours.
  hybrid      Round five, decision level. The shipped pack (A) together with H(p): the pack's rules with every
              concept matched by its SetFit head (fine-tuned space) at probability p. Block when H(cut) blocks,
              or when A blocks and H(veto) blocks too (A's blocks that H(veto) would not make are dropped). Rules
              without a concept (patterns, context) fire the same in A and H. --cuts, --vetoes; dev rows by default.

Extra pairs are part of the tuned model's training digest, so these models never replace the pack's cached one.

  OMP_NUM_THREADS=1 .venv/bin/python scripts/intent_experiments.py counters --deltas 0,0.02,0.05
  OMP_NUM_THREADS=1 .venv/bin/python scripts/intent_experiments.py counters --model sentence-transformers/all-MiniLM-L6-v2+finetune --from-policy
  OMP_NUM_THREADS=1 .venv/bin/python scripts/intent_experiments.py pairs --extra negatives
  OMP_NUM_THREADS=1 .venv/bin/python scripts/intent_experiments.py data-loso --files jbb_behaviors,harmbench_val
  OMP_NUM_THREADS=1 .venv/bin/python scripts/intent_experiments.py neighbours --k 2 --counter-k 1 --deltas 0.02,0.04
  OMP_NUM_THREADS=1 .venv/bin/python scripts/intent_experiments.py heads --cuts 0.5,0.7,0.9
  OMP_NUM_THREADS=1 .venv/bin/python scripts/intent_experiments.py hybrid --cuts 0.9,0.95 --vetoes 0.3,0.5
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from pack_versions import FILES  # noqa: E402 - the same files, in the same order, as the other comparisons

FINETUNE = "sentence-transformers/all-MiniLM-L6-v2+finetune"
HEADER = ["| experiment | setting | file | split | FRR (safe blocked) [95% CI] | catch (unsafe blocked) [95% CI] "
          "| pack cases failed |", "|---|---|---|---|---|---|---|"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", choices=["counters", "pairs", "data-loso", "neighbours", "heads", "hybrid"])
    ap.add_argument("--pack", default=str(ROOT / "policies" / "default.policy"))
    ap.add_argument("--model", help="replace the pack's model id (pairs and data-loso always use +finetune; "
                                     "hybrid uses the pack's own and +finetune)")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--files", default=",".join(FILES), help="data files to score (data-loso: to leave out)")
    ap.add_argument("--deltas", default="0,0.01,0.03", help="threshold shifts (threshold - delta)")
    ap.add_argument("--from-policy", action="store_true",
                    help="counters: start from `calibrate --from-policy` thresholds instead of the written ones")
    ap.add_argument("--extra", default="negatives", help="pairs: negatives, anchors or negatives,anchors")
    ap.add_argument("--cap", type=int, default=300, help="data-loso: training rows per data file")
    ap.add_argument("--k", type=int, default=2, help="neighbours: examples averaged per concept")
    ap.add_argument("--counter-k", type=int, default=1, help="neighbours: counter-examples averaged per concept")
    ap.add_argument("--splits", default="dev", help="neighbours, heads, hybrid: dev or dev,holdout")
    ap.add_argument("--cuts", default="0.5,0.7,0.9", help="heads, hybrid: probability cuts")
    ap.add_argument("--vetoes", default="0.3", help="hybrid: the cut of H that A's blocks must also pass")
    ap.add_argument("--combine", default="alone", choices=["alone", "and", "or"],
                    help="heads: the head alone, or together with the shipped nearest-neighbour rule")
    ap.add_argument("--markdown", help="also write the table here")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from measure_pack import LARGE_DEFAULT_LIMIT, load_rows

    from policyengine.compiler import compile_policy
    from policyengine.testing.runner import discover, load

    policy = compile_policy(args.pack)
    model = FINETUNE if args.experiment in ("pairs", "data-loso") else (args.model or policy.model)
    if args.experiment == "hybrid":
        model = policy.model  # A is the pack as shipped; the head's space is FINETUNE
    policy = dataclasses.replace(policy, model=model)
    files = [f for f in args.files.split(",") if f]
    chosen = tuple(x for x in args.splits.split(",") if x)
    splits = {"data-loso": ("dev", "holdout"), "neighbours": chosen, "heads": chosen, "hybrid": chosen}.get(
        args.experiment, ("dev",))
    needed = {(f, s) for f in files for s in splits}
    if args.experiment == "data-loso":  # training pairs come from the other files' dev rows
        needed |= {(f, "dev") for f in FILES}
    raw = {(f, s): load_rows(Path(args.data_dir) / f"{f}.jsonl", s, LARGE_DEFAULT_LIMIT.get(f))
           for f, s in sorted(needed) if (Path(args.data_dir) / f"{f}.jsonl").is_file()}
    cases = [c for c in load(discover([args.pack])[0], build=False).cases if c.todo is None]
    deltas = [float(x) for x in args.deltas.split(",") if x]
    run = {"counters": _counters, "pairs": _pairs, "data-loso": _data_loso, "neighbours": _neighbours,
           "heads": _heads, "hybrid": _hybrid}[args.experiment]
    lines = HEADER + run(args, policy, raw, files, splits, cases, deltas)
    print("\n".join(lines))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")
    return 0


# ---- shared pieces ---------------------------------------------------------------------------------------------


def _used(policy: Any) -> list[str]:
    return sorted(c for c in policy.used_concepts if c in policy.concepts)


def _rows(raw: dict, f: str, s: str) -> list:
    from policyengine.measure.data import Row

    return [Row(r["id"], r["text"], r["label"], f, i + 1, r.get("category"), r.get("context"))
            for i, r in enumerate(raw[(f, s)])]


def _score(name: str, setting: str, policy: Any, embedder: Any, raw: dict, files: list[str], splits: tuple,
           cases: list, scoring: Any = None) -> list[str]:
    """One engine for `policy`: a table line per file and split, each ending with the pack-case failures.
    `scoring(index, concept, vecs)` replaces the index's scores (vectors already in the index's space)."""
    from intent_compare import cell

    from policyengine.measure.runner import build_engine, run_rows
    from policyengine.testing.runner import evaluate_cases

    engine = build_engine(policy, embedder=embedder)
    if scoring is not None:
        _use_scoring(engine, scoring)
    failed = [r for r in evaluate_cases(engine, cases) if r.status != "passed"]
    print(f"[{name} {setting}] pack cases failed: {len(failed)} of {len(cases)}: "
          + "; ".join(f"{r.case.expect} {((r.case.input or r.case.output) or '')[:50]!r}" for r in failed),
          file=sys.stderr, flush=True)
    out = []
    n, t0 = 0, time.perf_counter()
    for f in files:
        for s in splits:
            res = run_rows(engine, _rows(raw, f, s), progress=False)
            n += len(res)
            safe = [r.blocked for r in res if not r.row.unsafe]
            unsafe = [r.blocked for r in res if r.row.unsafe]
            out.append(f"| {name} | {setting} | {f} | {s} | {cell(sum(safe), len(safe))} | "
                       f"{cell(sum(unsafe), len(unsafe))} | {len(failed)}/{len(cases)} |")
    # the first setting of a run also embeds every row; later ones find the embeddings cached
    print(f"[{name} {setting}] {1000 * (time.perf_counter() - t0) / max(n, 1):.2f} ms/message over {n} rows",
          file=sys.stderr, flush=True)
    return out


def _shifted(policy: Any, base: dict[str, float], delta: float) -> Any:
    from policyengine.measure.calibrate import with_thresholds

    return with_thresholds(policy, {k: v - delta for k, v in base.items()})


def _from_policy(policy: Any, embedder: Any) -> dict[str, float]:
    from policyengine.measure.calibrate import benign_ceilings
    from policyengine.measure.runner import build_engine

    return {r.concept: r.new for r in benign_ceilings(build_engine(policy, embedder=embedder))}


def _tuned(policy: Any, label: str, extra: list[tuple[str, str, float]]) -> Any:
    """The policy's "+finetune" model trained on its own pairs plus `extra` (the library folds them into the
    training digest, so the pack's own cached model is never replaced). Returns a caching embedder around it."""
    from policyengine.intent.finetune import tuned_embedder
    from policyengine.measure.runner import CachingEmbedder

    t0 = time.perf_counter()
    tuned = tuned_embedder(policy.model, {k: (policy.concepts[k].examples, policy.concepts[k].counter)
                                          for k in _used(policy)}, extra_pairs=extra)
    print(f"[{label}] {len(extra)} extra pairs; model ready in {time.perf_counter() - t0:.0f} s "
          f"(cached: {tuned.info.get('cached')})", file=sys.stderr, flush=True)
    return CachingEmbedder(policy.model, 1, inner=tuned)


def _benign_pool(policy: Any) -> list[str]:
    """Every counter-example of the concepts rules use, then the background set, each once."""
    from policyengine.intent.contrastive import background_texts

    used = _used(policy)
    return list(dict.fromkeys([t for k in used for t in policy.concepts[k].counter] + list(background_texts())))


def mean_of_nearest(index: Any, concept: str, chunk_vecs: Any, k: int, counter_k: int) -> Any:
    """Like ConceptIndex.score on vectors already in the index's space, but each score is the mean similarity of
    the k nearest examples (counter_k nearest counter-examples); the index reported is still the nearest one."""
    import numpy as np

    from policyengine.matchers.similarity import ConceptScores

    ex, ctr = index._indexes[concept]
    n = chunk_vecs.shape[0]
    if n == 0:
        return index.score(concept, chunk_vecs, mapped=True)
    d, i = ex.search(chunk_vecs, min(k, ex.ntotal))
    if ctr is not None:
        cd, ci = ctr.search(chunk_vecs, min(counter_k, ctr.ntotal))
        cscore, cidx = cd.mean(axis=1), ci[:, 0]
    else:
        cscore, cidx = np.full(n, -np.inf, dtype=np.float32), np.full(n, -1, dtype=np.int64)
    return ConceptScores(d.mean(axis=1).astype(np.float32), i[:, 0], cscore.astype(np.float32), cidx)


def head_scores(index: Any, heads: dict[str, Any], concept: str, chunk_vecs: Any, combine: str = "alone",
                nn: dict[str, float] | None = None) -> Any:
    """The concept head's probability as the example score, with no counter-example to beat; the index reported is
    the nearest example's, so the explanation still names one. combine "and"/"or": the head's probability where
    the shipped nearest-neighbour rule (thresholds `nn`, beat the nearest counter) also matches / else 1.0 where it
    matches."""
    import numpy as np

    from policyengine.matchers.similarity import ConceptScores

    near = index.score(concept, chunk_vecs, mapped=True)
    n = chunk_vecs.shape[0]
    if n == 0:
        return near
    prob = heads[concept].predict_proba(chunk_vecs)[:, 1].astype(np.float32)
    if combine != "alone":
        assert nn is not None
        hit = (near.ex_score >= nn[concept]) & (near.ex_score > near.ctr_score + index.concepts[concept].margin)
        prob = np.where(hit, prob, 0.0) if combine == "and" else np.where(hit, 1.0, prob)
        prob = prob.astype(np.float32)
    return ConceptScores(prob, near.ex_index, np.full(n, -np.inf, dtype=np.float32), np.full(n, -1, dtype=np.int64))


def fit_heads(index: Any, concepts: list[str], benign: list[str]) -> dict[str, Any]:
    """One balanced logistic regression per concept: its examples (1) against `benign` (0), in the index's space."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    neg = index.to_space(index.encode(benign))
    heads = {}
    for k in concepts:
        examples = list(index.concepts[k].examples)
        own = set(examples)
        pos = index.to_space(index.encode(examples))
        keep = [i for i, t in enumerate(benign) if t not in own]
        x = np.vstack([pos, neg[keep]])
        y = np.r_[np.ones(len(pos)), np.zeros(len(keep))]
        heads[k] = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000).fit(x, y)
    return heads


def _use_scoring(engine: Any, scoring: Any) -> None:
    """Experiment only: the engine's concept index (engine._index, the object its evaluator scores with) scores
    with `scoring`; the evaluator calls index.score(concept, vecs, mapped=True) on vectors already in its space."""
    index = engine._index
    plain = index.score
    index.score = lambda concept, vecs, mapped=False: scoring(
        _Plain(index, plain), concept, vecs if mapped else index.to_space(vecs))


class _Plain:
    """The index as it was, for scorings that start from its nearest-neighbour scores."""

    def __init__(self, index: Any, score: Any) -> None:
        self._index, self.score = index, score

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)


# ---- the experiments -------------------------------------------------------------------------------------------


def _counters(args: Any, policy: Any, raw: dict, files: list[str], splits: tuple, cases: list,
              deltas: list[float]) -> list[str]:
    from policyengine.matchers.embedders import split_model_id
    from policyengine.measure.runner import policy_shared_embedder

    used = _used(policy)
    embedder = policy_shared_embedder(policy, 1)  # "+finetune": the pack's own tuned model, for both variants
    start = _from_policy(policy, embedder) if args.from_policy else {k: policy.concepts[k].threshold for k in used}
    pool = _benign_pool(policy)
    concepts = dict(policy.concepts)
    for k in used:
        spec = concepts[k]
        own = set(spec.examples)
        concepts[k] = dataclasses.replace(spec, counter_spans=(), counter=tuple(dict.fromkeys(
            list(spec.counter) + [t for t in pool if t not in own])))
    shared = dataclasses.replace(policy, concepts=concepts)
    out = []
    for name, p in (("own counters", policy), ("shared counters", shared)):
        for d in deltas:
            setting = ("from-policy" if args.from_policy else "as written") + f" - {d:g}"
            out += _score(f"{name} ({split_model_id(policy.model)[1] or 'plain'})", setting,
                          _shifted(p, start, d), embedder, raw, files, splits, cases)
    return out


def _pairs(args: Any, policy: Any, raw: dict, files: list[str], splits: tuple, cases: list,
           deltas: list[float]) -> list[str]:
    from policyengine.matchers.embedders import load_embedder

    used = _used(policy)
    kinds = [k for k in args.extra.split(",") if k]
    rng = random.Random(1)
    pool = _benign_pool(policy)
    examples = [(k, e) for k in used for e in policy.concepts[k].examples]
    extra: list[tuple[str, str, float]] = []
    if "negatives" in kinds:
        for k, e in examples:
            own = set(policy.concepts[k].examples)
            extra += [(e, t, 0.0) for t in rng.sample(pool, 2) if t not in own]
    if "anchors" in kinds:
        texts = pool + [e for _, e in examples]
        picks = [tuple(rng.sample(texts, 2)) for _ in range(2 * len(examples))]
        uniq = sorted({t for ab in picks for t in ab})
        vecs = load_embedder(FINETUNE.rpartition("+")[0]).encode(uniq)
        row = {t: i for i, t in enumerate(uniq)}
        extra += [(a, b, max(0.0, float(vecs[row[a]] @ vecs[row[b]]))) for a, b in picks]
    embedder = _tuned(policy, "experiment-pairs-" + "+".join(sorted(kinds)), extra)
    start = _from_policy(policy, embedder)
    out = []
    for d in deltas:
        out += _score(f"+finetune, extra pairs: {'+'.join(kinds)}", f"from-policy - {d:g}",
                      _shifted(policy, start, d), embedder, raw, files, splits, cases)
    return out


def _data_loso(args: Any, policy: Any, raw: dict, files: list[str], splits: tuple, cases: list,
               deltas: list[float]) -> list[str]:
    import numpy as np

    from policyengine.matchers.embedders import load_embedder

    used = _used(policy)
    examples = [(k, e) for k in used for e in policy.concepts[k].examples]
    base = load_embedder(FINETUNE.rpartition("+")[0])
    ex_vecs = base.encode([e for _, e in examples])
    out = []
    for left_out in files:
        rng = random.Random(0)
        extra: list[tuple[str, str, float]] = []
        for f in FILES:
            if f == left_out or (f, "dev") not in raw:
                continue
            rows = list(raw[(f, "dev")])
            rng.shuffle(rows)
            rows = rows[:args.cap]
            sims = base.encode([r["text"] for r in rows]) @ ex_vecs.T
            for r, s in zip(rows, sims):
                top = np.argsort(-s)[:2]
                k, e = examples[top[0]]
                if r["label"] == "unsafe":
                    extra.append((r["text"], e, 1.0))
                    others = [x for x in policy.concepts[k].examples if x != e]
                    if others:
                        extra.append((r["text"], rng.choice(others), 1.0))
                else:
                    extra += [(r["text"], e, 0.0), (r["text"], examples[top[1]][1], 0.0)]
            if f == "jbb_behaviors":  # benign row i and harmful row i share a topic
                by: dict[str, dict[str, str]] = {}
                for r in raw[(f, "dev")]:
                    by.setdefault(r["id"].rsplit("-", 1)[-1], {})[r["label"]] = r["text"]
                extra += [(d["unsafe"], d["safe"], 0.0) for d in by.values() if len(d) == 2]
        embedder = _tuned(policy, f"experiment-data-cap{args.cap}-without-{left_out}", extra)
        start = _from_policy(policy, embedder)
        for d in deltas:
            out += _score(f"+finetune + data pairs (without {left_out})", f"from-policy - {d:g}",
                          _shifted(policy, start, d), embedder, raw, [left_out], splits, cases)
    return out


def _neighbours(args: Any, policy: Any, raw: dict, files: list[str], splits: tuple, cases: list,
                deltas: list[float]) -> list[str]:
    from policyengine.measure.runner import policy_shared_embedder

    embedder = policy_shared_embedder(policy, 1)
    start = {k: policy.concepts[k].threshold for k in _used(policy)}
    out = []
    for k, ck, ds in ((1, 1, [0.0]), (args.k, args.counter_k, deltas)):
        for d in ds:
            out += _score(f"mean of {k} nearest examples, {ck} nearest counters", f"as written - {d:g}",
                          _shifted(policy, start, d), embedder, raw, files, splits, cases,
                          scoring=lambda ix, c, v, k=k, ck=ck: mean_of_nearest(ix, c, v, k, ck))
    return out


def _heads(args: Any, policy: Any, raw: dict, files: list[str], splits: tuple, cases: list,
           deltas: list[float]) -> list[str]:
    from policyengine.measure.runner import policy_shared_embedder, build_engine

    embedder = policy_shared_embedder(policy, 1)
    used = _used(policy)
    t0 = time.perf_counter()
    heads = fit_heads(build_engine(policy, embedder=embedder)._index, used, _benign_pool(policy))
    print(f"[heads] {len(heads)} heads fitted in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    nn = {k: policy.concepts[k].threshold for k in used}
    out = _score("nearest example (shipped)", "as written", policy, embedder, raw, files, splits, cases)
    name = {"alone": "logistic head per concept", "and": "head and nearest example",
            "or": "head or nearest example"}[args.combine]
    for cut in [float(x) for x in args.cuts.split(",") if x]:
        out += _score(name, f"p >= {cut:g}", _shifted(policy, {k: cut for k in used}, 0.0),
                      embedder, raw, files, splits, cases,
                      scoring=lambda ix, c, v: head_scores(ix, heads, c, v, args.combine, nn))
    return out


def _hybrid(args: Any, policy: Any, raw: dict, files: list[str], splits: tuple, cases: list,
            deltas: list[float]) -> list[str]:
    from intent_compare import cell

    from policyengine.measure.runner import policy_shared_embedder, build_engine, run_rows

    used = _used(policy)
    tuned = dataclasses.replace(policy, model=FINETUNE)
    tuned_embedder = policy_shared_embedder(tuned, 1)
    heads = fit_heads(build_engine(tuned, embedder=tuned_embedder)._index, used, _benign_pool(tuned))
    rows = {(f, s): _rows(raw, f, s) for f in files for s in splits}

    def blocks(engine: Any) -> tuple[dict, list[bool]]:
        on_rows = {key: [r.blocked for r in run_rows(engine, rs, progress=False)] for key, rs in rows.items()}
        return on_rows, [d.action == "block" for d in engine.evaluate_many([c.item() for c in cases])]

    shipped, shipped_cases = blocks(build_engine(policy))
    cuts = [float(x) for x in args.cuts.split(",") if x]
    vetoes = [float(x) for x in args.vetoes.split(",") if x]
    head: dict[float, tuple[dict, list[bool]]] = {}
    for p in sorted(set(cuts) | set(vetoes)):
        engine = build_engine(_shifted(tuned, {k: p for k in used}, 0.0), embedder=tuned_embedder)
        _use_scoring(engine, lambda ix, c, v: head_scores(ix, heads, c, v))
        head[p] = blocks(engine)

    def line(name: str, setting: str, on_rows: dict, on_cases: list[bool]) -> list[str]:
        # the hybrid only adds or drops blocks, so a case is judged on block-or-not alone (a dropped block counts
        # as the allow, redact or flag the case expects)
        failed = sum(b != (c.expect == "block") for c, b in zip(cases, on_cases))
        out = []
        for f in files:
            for s in splits:
                got = list(zip(rows[(f, s)], on_rows[(f, s)]))
                safe, unsafe = [b for r, b in got if not r.unsafe], [b for r, b in got if r.unsafe]
                out.append(f"| {name} | {setting} | {f} | {s} | {cell(sum(safe), len(safe))} | "
                           f"{cell(sum(unsafe), len(unsafe))} | {failed}/{len(cases)} |")
        return out

    out = line("shipped pack (A)", "as written", shipped, shipped_cases)
    for hi in cuts:
        for lo in [v for v in vetoes if v < hi]:
            hb, hc = head[hi]
            vb, vc = head[lo]
            comb = {key: [h or (a and v) for a, h, v in zip(shipped[key], hb[key], vb[key])] for key in rows}
            comb_cases = [h or (a and v) for a, h, v in zip(shipped_cases, hc, vc)]
            out += line("H(cut), or A and H(veto)", f"cut {hi:g}, veto {lo:g}", comb, comb_cases)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
