"""4. Cold start: a new `policyengine check` process on the default pack, start to exit, wall seconds and peak RSS.

Cases, each a fresh process, interleaved run by run so load drifts hit them alike:
  import_torch  `python -c "import torch"` (the yardstick: the old runtime paid this and more on every start)
  check_warm    `python -m policyengine check policies/default.policy hello`, compiled-policy cache warm
  check_bundle  the same on a bundle from `policyengine compile` (its own sources, vectors and ONNX model)
  torch_nocache (once, not with --quick) the old path: torch backend, compiled-policy cache off
The cache lives in a temporary folder ($POLICYENGINE_CACHE), warmed by one untimed run (the ONNX export is copied
from the user's cache when present, else exported once). Targets (issue 21): check_warm <= 1.5 s and <= 350 MB,
`torch` not imported (tests/test_runtime.py asserts that), ratio check_warm / import_torch reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import median

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = "policies/default.policy"


def _one(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of one process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, p.returncode


def _seed(cache: Path) -> None:
    from policyengine.matchers.embedders import resolve_model_path
    from policyengine.matchers.onnx_backend import weights_digest

    digest = weights_digest(resolve_model_path("all-MiniLM-L6-v2"))
    src = Path.home() / ".cache" / "policyengine" / "onnx" / digest[:16]
    if (src / "model-fp32.onnx").is_file():
        shutil.copytree(src, cache / "onnx" / digest[:16], dirs_exist_ok=True)
    for sub in ("intent", "heads"):  # trained +contrastive maps and trained-concept heads (by training digest)
        d = Path.home() / ".cache" / "policyengine" / sub
        if d.is_dir():
            shutil.copytree(d, cache / sub, dirs_exist_ok=True)


def run(runs: int = 5, baseline: bool = True) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="pe-cold-"))
    cache = tmp / "cache"
    _seed(cache)
    env = dict(os.environ, PYTHONPATH=str(ROOT), POLICYENGINE_CACHE=str(cache), HF_HUB_OFFLINE="1",
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), TOKENIZERS_PARALLELISM="false")
    py = sys.executable
    bundle = tmp / "default.pebundle"
    t0 = time.perf_counter()
    subprocess.run([py, "-m", "policyengine", "check", DEFAULT, "hello"], cwd=ROOT, env=env, check=True,
                   capture_output=True)  # warms the cache: compile, embed the exemplars once
    warm_s = time.perf_counter() - t0
    subprocess.run([py, "-m", "policyengine", "compile", DEFAULT, "-o", str(bundle)], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    cases = {
        "import_torch": [py, "-c", "import torch"],
        "check_warm": [py, "-m", "policyengine", "check", DEFAULT, "hello"],
        "check_bundle": [py, "-m", "policyengine", "check", str(bundle), "hello"],
    }
    res: dict[str, list[tuple[float, float, int]]] = {k: [] for k in cases}
    for _ in range(runs):
        for k, cmd in cases.items():
            res[k].append(_one(cmd, env))
    out: dict = {"runs": runs, "first_run_fills_cache_s": round(warm_s, 1), "bundle_bytes": bundle.stat().st_size,
                 "load_average_at_end": os.getloadavg()}
    for k, rows in res.items():
        out[k + "_s"] = round(median([r[0] for r in rows]), 2)
        out[k + "_mb"] = round(median([r[1] for r in rows]))
        out[k + "_exit_codes"] = sorted({r[2] for r in rows})
        out[k + "_all_s"] = [round(r[0], 2) for r in rows]
    out["check_warm_vs_import_torch"] = round(median([c[0] / t[0] for c, t in zip(res["check_warm"],
                                                                                    res["import_torch"])]), 2)
    if baseline:
        env_old = dict(env, POLICYENGINE_BACKEND="torch", POLICYENGINE_COMPILED_CACHE="0")
        wall, mb, code = _one([py, "-m", "policyengine", "check", DEFAULT, "hello"], env_old)
        out.update({"torch_nocache_s": round(wall, 1), "torch_nocache_mb": round(mb), "torch_nocache_exit": code})
    shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(runs=int(sys.argv[1]) if len(sys.argv) > 1 else 5), indent=1))
