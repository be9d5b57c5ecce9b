#!/usr/bin/env python3
"""Issue 8, candidate 1: a SetFit-style full fine-tune of MiniLM on the policy's own pairs, measured against `plain`
and `space` (the shipped residual linear map) exactly as scripts/intent_compare.py measures approaches.

Training data: ONLY the pack's used concepts (examples, counter) and policyengine/intent/background.txt — never
../shared/data (issue 8: training on dataset rows teaches each source's style). Pairs, for every example e of a
concept c (seeded):
  (e, another example of c)            label 1   (--positives per example)
  (e, a counter-example of c)          label 0   (if c has counters)
  (e, a background sentence)           label 0
All 6 MiniLM layers + embeddings are trained with sentence-transformers' CosineSimilarityLoss (SetFit's loss) or
OnlineContrastiveLoss, 1 epoch, batch 16, AdamW lr 2e-5, 10% linear warm-up, grad-norm 1, seed 0. The installed
sentence-transformers (6.x) implements `fit` on top of `datasets` + `accelerate`, which this project does not
install, so the loop is written out: since the `+finetune` option landed it is the library's
(policyengine/intent/finetune.py: pairs, trainer, digest), whose warm-up no longer starts at a zero learning rate;
the tables of the first measurement in docs/intent.md came from the script's earlier copy of the loop.

Measurement: the whole pack (regex rules included) with the engine's embedder replaced by the tuned model, so
examples, counter-examples and message chunks are all embedded in the tuned space. Thresholds are shifted by delta
and the counter comparison by a margin m, (m, delta) chosen leave-one-source-out with intent_compare's objective
(mean catch - 3 x mean FRR on the dev rows of the OTHER files). Holdout rows are only scored, never used to choose.
The delta grid is wider than `space`'s because a fine-tuned model's similarity scale moves.
`plain` and `space` rows come from scripts/intent_compare.py run in the same process on the same pack.

  OMP_NUM_THREADS=2 .venv/bin/python scripts/intent_finetune.py --policy /tmp/pack_base/policies/default.policy \
      --markdown /tmp/finetune.md
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

# space's grid is m in {0, 0.03}, delta in {-0.03 .. 0.06}; the tuned model's scores sit higher (its examples are
# pulled together, so anything near a topic scores high), so delta reaches further up and m further out.
GRID = [(m, d) for m in (0.0, 0.03, 0.10, 0.20)
        for d in (-0.06, -0.03, 0.0, 0.03, 0.06, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.60)]


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a random unsafe row > score of a random safe row), ties half."""
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def dev_auc(policy, concepts, background, data, tuned, icmp, ic) -> None:
    """DEV rows only. Per message (whole text, no chunking): max over the pack's concepts of the best example
    similarity (`ex`) and of best example minus best counter-example (`ex-ctr`), in three spaces."""
    from policyengine.matchers.embedders import load_embedder

    base = icmp.CachingEmbedder(load_embedder(policy.model), ic.cache_dir().parent / "emb" / "minilm.npz")
    W = ic.train_map({k: (base.encode(list(e)), base.encode(list(c))) for k, (e, c) in concepts.items()},
                     base.encode(list(background)), ic.TrainConfig())
    spaces = {"base": (base, None), "linear map (space)": (base, W), "fine-tuned": (tuned, None)}
    for f in ("jbb_behaviors", "hatecheck"):
        rows = data[f, "dev"]
        y = np.array([r["label"] == "unsafe" for r in rows])
        for name, (emb, M) in spaces.items():
            def enc(texts):
                v = emb.encode(list(texts))
                return ic.apply_map(M, v) if M is not None and len(v) else v
            X = enc([r["text"] for r in rows])
            ex_best = np.full(len(rows), -np.inf)
            margin_best = np.full(len(rows), -np.inf)
            for e, c in concepts.values():
                es = (X @ enc(e).T).max(axis=1)
                cs = (X @ enc(c).T).max(axis=1) if c else np.full(len(rows), -1.0)
                ex_best = np.maximum(ex_best, es)
                margin_best = np.maximum(margin_best, es - cs)
            print(f"dev AUC {f:14s} {name:20s} ex {auc(ex_best[y], ex_best[~y]):.3f}  "
                  f"ex-ctr {auc(margin_best[y], margin_best[~y]):.3f}  (n unsafe {y.sum()}, safe {(~y).sum()})",
                  file=sys.stderr, flush=True)
    base.save()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default=str(ROOT / "policies" / "default.policy"))
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--markdown", help="write the table here")
    ap.add_argument("--loss", choices=["cosine", "online"], default="cosine")
    ap.add_argument("--positives", type=int, default=2, help="(example, example) pairs per example")
    ap.add_argument("--max-pairs", type=int, default=None, help="shrink: keep only the first N shuffled pairs")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training (evaluation uses 1)")
    ap.add_argument("--dev-curve", help="write every grid point's DEV counts per file here (json; holdout not written)")
    ap.add_argument("--auc", action="store_true",
                    help="also print a threshold-free DEV diagnostic: ROC AUC (unsafe vs safe rows of jbb_behaviors "
                         "and hatecheck) of the whole-message concept score in the base, linear-map and tuned spaces")
    ap.add_argument("--no-compare", action="store_true", help="skip the plain/space rows (intent_compare)")
    ap.add_argument("--train-only", action="store_true",
                    help="train (or find in the cache), print the tuned model's directory and stop; "
                         "the library's `+finetune` option trains the same model: see scripts/calibrate_loso.py --model")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    for k, v in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(k, v)

    import torch

    import intent_compare as icmp
    from measure_pack import LARGE_DEFAULT_LIMIT, load_rows
    from policyengine import Engine
    from policyengine.compiler import compile_policy
    from policyengine.intent import contrastive as ic
    from policyengine.intent import finetune as ft
    from policyengine.matchers.embedders import resolve_model_path, split_model_id
    from policyengine.matchers.similarity import ConceptScores

    policy = compile_policy(args.policy)
    base_id = split_model_id(policy.model)[0]
    policy = dataclasses.replace(policy, model=base_id)
    concepts = {k: (tuple(policy.concepts[k].examples), tuple(policy.concepts[k].counter))
                for k in policy.used_concepts}
    background = ic.background_texts()
    cfg = ft.FinetuneConfig(positives=args.positives, epochs=args.epochs, batch=args.batch, lr=args.lr,
                            loss=args.loss, seed=args.seed)
    pairs = ft.build_pairs(concepts, background, args.positives, args.seed)
    if args.max_pairs:
        pairs = pairs[:args.max_pairs]
    n_pos = sum(y == 1.0 for _, _, y in pairs)
    print(f"pairs: {len(pairs)} ({n_pos} similar, {len(pairs) - n_pos} dissimilar) from {len(concepts)} concepts "
          f"+ {len(background)} background sentences", file=sys.stderr, flush=True)

    # --- plain and space, from intent_compare itself, same pack, same rows --------------------------------------
    compare_md = ""
    if not args.no_compare and not args.train_only:
        tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"intent_finetune_compare_{os.getpid()}.md"
        buf = io.StringIO()
        with redirect_stdout(buf):
            icmp.main(["--policy", args.policy, "--data-dir", args.data_dir, "--approaches", "plain,space",
                       "--markdown", str(tmp)])
        compare_md = tmp.read_text()
        tmp.unlink()
        for line in buf.getvalue().splitlines():
            if line.startswith("contrastive map training"):
                print(line, file=sys.stderr, flush=True)

    # --- train -------------------------------------------------------------------------------------------------
    torch.set_num_threads(args.threads)
    digest = ft.training_digest(base_id, concepts, background, cfg).split(":")[-1][:16]
    if args.max_pairs:
        digest += f"-first{args.max_pairs}"
    saved = ic.cache_dir().parent / "finetune" / digest  # the tuned model, so a re-run only re-measures
    if (saved / "train.json").exists():
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(saved), device="cpu")
        model.eval()
        train_s = json.loads((saved / "train.json").read_text())["seconds"]
        how = f"loaded from {saved}; trained earlier in"
    else:
        t0 = time.time()
        model = ft.train(resolve_model_path(base_id), pairs, cfg, threads=args.threads,
                         log=lambda m: print("  " + m, file=sys.stderr, flush=True))
        train_s = time.time() - t0
        model.save(str(saved))
        (saved / "train.json").write_text(json.dumps({"seconds": train_s, "threads": args.threads,
                                                       **dataclasses.asdict(cfg)}))
        how = "trained in"
    print(f"fine-tune: {how} {train_s:.1f} s, {len(pairs)} pairs, {args.threads} threads", file=sys.stderr,
          flush=True)
    if args.train_only:
        print(saved)
        return 0
    torch.set_num_threads(1)
    del model  # measured through the library's embedder, loaded from the saved directory
    tuned_raw = ft.TunedEmbedder(saved, base_id)
    tuned = icmp.CachingEmbedder(tuned_raw, ic.cache_dir().parent / "emb" / f"finetune-{digest}.npz")
    engine = Engine(policy, embedder=tuned, threads=1)
    index = engine._index
    orig_score = index.score
    files = icmp.FILES
    data = {(f, s): load_rows(Path(args.data_dir) / f"{f}.jsonl", s, LARGE_DEFAULT_LIMIT.get(f))
            for f in files for s in ("dev", "holdout")}

    # per-message cost: the tuned model has the base model's architecture; time raw encodes of jbb dev rows
    texts = [r["text"] for r in data["jbb_behaviors", "dev"]]
    t0 = time.time()
    tuned_raw.encode(texts)
    per_msg_ms = 1000 * (time.time() - t0) / len(texts)

    def run(m: float, delta: float):
        def score(concept, vecs, mapped=False):
            sc = orig_score(concept, vecs, mapped=mapped)
            return ConceptScores(sc.ex_score - delta, sc.ex_index, sc.ctr_score + m - delta, sc.ctr_index)
        index.score = score
        out = {}
        for f in files:
            for split in ("dev", "holdout"):
                rows = data[f, split]
                out[f, split] = icmp.tally(rows, engine.evaluate_many([r["text"] for r in rows]),
                                           where=f"finetune on {f}/{split}")
        index.score = orig_score
        return out

    results = {}
    t0 = time.time()
    for m, d in GRID:
        results[m, d] = run(m, d)
        tuned.save()
    print(f"grid evaluated in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    if args.dev_curve:
        Path(args.dev_curve).write_text(json.dumps(
            [{"m": m, "delta": d, **{f: res[f, "dev"] for f in files}} for (m, d), res in results.items()], indent=1))

    if args.auc:
        dev_auc(policy, concepts, background, data, tuned, icmp, ic)

    name = f"finetune-{args.loss}"
    lines = []
    for f in files:
        best = max(results, key=lambda p: icmp.objective(results[p], f))
        for split in ("dev", "holdout"):
            fs, ns, cu, nu = results[best][f, split]
            lines.append(f"| {name} | m={best[0]:g} delta={best[1]:g} | {f} | {split} | {icmp.cell(fs, ns)} | {icmp.cell(cu, nu)} |")
    # the tuned model with the pack's thresholds as written (delta = 0, m = 0), as a pack would ship it
    for f in files:
        for split in ("dev", "holdout"):
            fs, ns, cu, nu = results[0.0, 0.0][f, split]
            lines.append(f"| {name} (as written) | m=0 delta=0 | {f} | {split} | {icmp.cell(fs, ns)} | {icmp.cell(cu, nu)} |")
    header = list(icmp.TABLE_HEADER)
    body = [ln for ln in compare_md.splitlines() if ln.startswith("| plain") or ln.startswith("| space")]
    text = "\n".join(header + body + lines)
    text += (f"\n\nfine-tune: {len(pairs)} pairs ({n_pos} similar), loss {args.loss}, {args.epochs} epoch, batch "
             f"{args.batch}, lr {args.lr:g}, seed {args.seed}; {how} {train_s:.1f} s on {args.threads} threads; "
             f"encode {per_msg_ms:.1f} ms per jbb dev message (1 thread, same architecture as base MiniLM)")
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
