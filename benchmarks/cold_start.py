"""4. Cold start: process start to first decision, from a .policy file and from a compiled bundle, against loading
the model alone (process start to first embedding). Each in a fresh interpreter; median of several."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from .common import median

DEFAULT = "policies/default.policy"

SNIPPETS = {
    "model_alone": "from policyengine.matchers.embedders import load_embedder\n"
                   "load_embedder('sentence-transformers/all-MiniLM-L6-v2').encode(['hello'])",
    "from_policy": f"from policyengine import Engine\nEngine.from_path({DEFAULT!r}).evaluate(input='hello')",
    "from_bundle": "from policyengine import Engine\nEngine.from_bundle({bundle!r}).evaluate(input='hello')",
}


def _one(code: str) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    return time.perf_counter() - t0


def run(runs: int = 3) -> dict:
    from policyengine.bundle import write_bundle

    bundle = os.path.join(tempfile.mkdtemp(prefix="pe-bench-"), "default.pebundle")
    t0 = time.perf_counter()
    write_bundle(DEFAULT, bundle)
    compile_s = time.perf_counter() - t0
    res: dict[str, list[float]] = {k: [] for k in SNIPPETS}
    for _ in range(runs):  # interleaved, so load drifts hit all three alike
        for k, code in SNIPPETS.items():
            res[k].append(_one(code.format(bundle=bundle)))
    out = {k + "_s": round(median(v), 2) for k, v in res.items()}
    out["bundle_vs_model_alone"] = round(median([b / m for b, m in zip(res["from_bundle"], res["model_alone"])]), 2)
    out["policy_vs_model_alone"] = round(median([p / m for p, m in zip(res["from_policy"], res["model_alone"])]), 2)
    out["compile_bundle_s"] = round(compile_s, 1)
    out["bundle_bytes"] = os.path.getsize(bundle)
    out["runs"] = runs
    out["seconds"] = {k: [round(x, 2) for x in v] for k, v in res.items()}
    return out
