"""Time the classic ReDoS patterns of tests/hardening/test_regex_safety.py: SafeRegex on 200,000 characters, and
Python's `re` on 28 characters of the same input for contrast (skipped where it never finishes).
Run from the repo root: .venv/bin/python fuzz/redos_measure.py"""

import re
import sys
import time

sys.path.insert(0, "tests/hardening")
sys.path.insert(0, ".")

from test_regex_safety import REDOS  # noqa: E402

from policyengine.normalize.saferegex import compile_safe  # noqa: E402

print("| pattern | input | SafeRegex (RE2) | Python re on 28 chars of the same input |")
print("|---|---|---|---|")
for pat, text in REDOS:
    big = (text * 4)[:200_000]
    rx = compile_safe(pat)
    t = time.perf_counter()
    list(rx.finditer(big))
    t_safe = time.perf_counter() - t
    if "x+x+" in pat:  # 2^28 steps: does not finish
        shown = "skipped (does not finish)"
    else:
        small = text[:27] + text[-1]
        t = time.perf_counter()
        re.search(pat, small)
        shown = f"{(time.perf_counter() - t) * 1000:.1f} ms"
    print(f"| `{pat[:40]}{'…' if len(pat) > 40 else ''}` | {len(big):,} chars | {t_safe * 1000:.1f} ms | {shown} |")
