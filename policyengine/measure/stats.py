"""Rates with 95% confidence intervals."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    """k successes out of n, as a rate with its 95% interval. `rate` is None when n == 0."""

    k: int
    n: int
    low: float | None
    high: float | None

    @property
    def rate(self) -> float | None:
        return self.k / self.n if self.n else None

    def pct(self, digits: int = 1) -> str:
        """'2.5% [1.1, 5.4] (5/200)' or '- (0/0)'."""
        if not self.n:
            return "- (0/0)"
        assert self.rate is not None and self.low is not None and self.high is not None
        return (f"{100 * self.rate:.{digits}f}% [{100 * self.low:.{digits}f}, {100 * self.high:.{digits}f}] "
                f"({self.k}/{self.n})")

    def to_dict(self) -> dict:
        return {"k": self.k, "n": self.n, "rate": self.rate, "low": self.low, "high": self.high}


def wilson(k: int, n: int, z: float = Z95) -> Interval:
    """Wilson score interval for a binomial proportion: well-behaved at 0/n and n/n, unlike the normal one."""
    if n <= 0:
        return Interval(k, n, None, None)
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exact at the edges (floating point would otherwise give 1e-17 instead of 0)
    return Interval(k, n, 0.0 if k == 0 else max(0.0, centre - half), 1.0 if k == n else min(1.0, centre + half))


@dataclass(frozen=True)
class Estimate:
    """A statistic that is not a single proportion (F1), with a percentile-bootstrap 95% interval."""

    value: float | None
    low: float | None
    high: float | None

    def pct(self, digits: int = 1) -> str:
        if self.value is None:
            return "-"
        assert self.low is not None and self.high is not None
        return f"{100 * self.value:.{digits}f}% [{100 * self.low:.{digits}f}, {100 * self.high:.{digits}f}]"

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}


def f1_score(tp: int, fp: int, fn: int) -> float | None:
    d = 2 * tp + fp + fn
    return 2 * tp / d if d else None


def f1_bootstrap(labels: Sequence[bool], blocked: Sequence[bool], resamples: int = 1000, seed: int = 0) -> Estimate:
    """F1 of `blocked` against `labels` (True = unsafe), with a seeded percentile bootstrap over rows."""
    import numpy as np

    y = np.asarray(labels, dtype=bool)
    b = np.asarray(blocked, dtype=bool)
    tp, fp, fn = int((y & b).sum()), int((~y & b).sum()), int((y & ~b).sum())
    value = f1_score(tp, fp, fn)
    if value is None or len(y) == 0:
        return Estimate(value, None, None)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(resamples, len(y)))
    yy, bb = y[idx], b[idx]
    tps = (yy & bb).sum(1)
    den = 2 * tps + (~yy & bb).sum(1) + (yy & ~bb).sum(1)
    f1s = np.where(den > 0, 2 * tps / np.maximum(den, 1), np.nan)
    f1s = f1s[~np.isnan(f1s)]
    if not len(f1s):
        return Estimate(value, None, None)
    return Estimate(value, float(np.percentile(f1s, 2.5)), float(np.percentile(f1s, 97.5)))
