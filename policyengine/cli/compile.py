"""`policyengine compile POLICY -o FILE`: precompute a policy's exemplar embeddings and regex database into a bundle
that `Engine.from_bundle`, `policyengine check BUNDLE` and `policyengine explain BUNDLE` load without re-embedding
or retraining the intent space. Also reports which patterns could not join
the one-pass regex engine and run on `re` instead."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def register(sub: Any) -> dict:
    p = sub.add_parser("compile", help="write a compiled bundle (exemplar embeddings + regex database)",
                       description="Compile POLICY, embed every concept example once, build the one-pass regex "
                                   "database, and write them to a bundle stamped with the model id, the weights' "
                                   "sha256 and the policy digest. A bundle whose policy or model changed is refused "
                                   "at load.")
    p.add_argument("policy")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="bundle to write (e.g. default.pebundle)")
    p.add_argument("--backend", choices=["onnx", "onnx-int8", "torch"], default=None,
                   help="embedding backend the bundle is built for (default onnx = ONNX Runtime fp32, exported once "
                        "from the installed weights and carried in the bundle; onnx-int8 = quantised, flips ~3%% of "
                        "decisions; torch = sentence-transformers)")
    p.add_argument("--no-model", action="store_true",
                   help="do not carry the ONNX model (~90 MB) in the bundle: where it loads, the model package "
                        "must be installed and the export cached (or torch available to export it)")
    p.add_argument("--regex-engine", choices=["auto", "hyperscan", "re"], default="auto")
    from .main import positive_int

    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="torch/ONNX threads, at least 1 (default 1 or $POLICYENGINE_THREADS)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    return {"compile": cmd_compile}


def cmd_compile(args: argparse.Namespace) -> int:
    from ..bundle import write_bundle

    t0 = time.perf_counter()
    try:
        m = write_bundle(args.policy, args.output, backend=args.backend, threads=args.threads,
                         regex_engine=args.regex_engine, include_model=not args.no_model)
    except OSError as e:
        print(f"policyengine compile: error: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
        return 2
    took = time.perf_counter() - t0
    if args.format == "json":
        print(json.dumps({k: v for k, v in m.items() if k != "exemplars"} | {"exemplars": len(m["exemplars"]),
                                                                             "output": args.output,
                                                                             "seconds": round(took, 2)}, indent=2))
        return 0
    model = m["model"]
    print(f"wrote {args.output}: policy {m['policy']['name']} ({m['policy']['digest']}), "
          + (f"{len(m['exemplars'])} exemplar embeddings from {model['id']} [{model['backend']}], "
             if model else "no concepts, ")
          + f"regex engine {m['regex']['engine']} ({took:.1f}s)")
    if m.get("intent"):
        print(f"  intent map: {m['intent']['digest'][:19]} (trained or loaded from the cache in "
              f"{m['intent']['trained_seconds']:.1f}s), shipped in the bundle")
    if m.get("finetune"):
        ft = m["finetune"]
        how = f"trained in {ft['trained_seconds']:.1f}s" if ft.get("trained_seconds") else "loaded from the cache"
        print(f"  fine-tuned model: {ft['digest'][:19]} ({how}), shipped in the bundle")
    for name, reason in m["regex"]["fallbacks"]:
        print(f"  note: pattern '{name}' runs on re, not in the one-pass engine: {reason}")
    return 0
