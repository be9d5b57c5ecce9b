"""`policyengine calibrate`: per concept, the threshold that catches the most unsafe rows while the false-refusal rate
stays within budget (overall, and per concept), from one embedding pass.

How it works. Every row is embedded once; for every concept the engine gives its threshold-free best score
(Engine.concept_scores): the concept fires on a row at threshold t exactly when that score >= t. Regex, word-list and
context conditions do not depend on thresholds, so they are evaluated once per row. A row's action for any set of
thresholds is then the rules' conditions over those truth values, combined by the decision algebra (algebra.combine),
with no model call. The search is greedy over a grid of thresholds (0.200 … 1.000, step 0.005):

1. while the budget is exceeded, take the threshold change that removes the most false refusals per catch lost;
2. while some change adds catches within the budget, take the one with the most catches per false refusal added;
3. centre each changed threshold in the gap between the rows it separates (a margin for rows not seen).

The result is then checked by evaluating the real engine with the new thresholds on every row (the reported
before/after figures and flips come from that evaluation, not from the search's model).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import nodes as n
from ..algebra import combine
from ..compiler import CompiledPolicy, CompiledRule, compile_policy, walk
from ..evaluator import Limits, flatten_context
from .runner import RowResult, build_engine, run_rows
from .scoring import Metrics, metrics
from .stats import wilson

GRID = np.round(np.arange(0.200, 1.0001, 0.005), 3)


# ---- the rows' decisions as a function of the thresholds -------------------------------------------------------


def _compare(actual: Any, op: str, expected: Any) -> bool:  # same semantics as the evaluator's comparisons
    if isinstance(expected, str) or isinstance(actual, str) or isinstance(expected, bool):
        return bool(actual == expected) if op == "==" else bool(actual != expected) if op == "!=" else False
    try:
        a, b = float(actual), float(expected)
    except (TypeError, ValueError):
        return False
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


class DecisionModel:
    """The policy's action on each row as a function of which concepts fire (everything else fixed per row)."""

    def __init__(self, policy: CompiledPolicy, results: Sequence[RowResult], concepts: Sequence[str]):
        self.policy = policy
        self.rules: tuple[CompiledRule, ...] = policy.rules
        self.concepts = list(concepts)
        self.cidx = {c: i for i, c in enumerate(self.concepts)}
        # rules whose truth depends on concept c (on the input: data rows have no model output)
        self.rules_of: list[list[int]] = [[] for _ in self.concepts]
        self.dynamic: list[bool] = []
        for k, rule in enumerate(self.rules):
            cs = {a.concept.value for a in walk(rule.when) if isinstance(a, n.Similar) and a.subject == "input"}
            for c in cs:
                if c in self.cidx:
                    self.rules_of[self.cidx[c]].append(k)
            self.dynamic.append(bool(cs))
        limit = Limits().max_input_chars  # what the engine scans (rows past it are blocked, not cut, there)
        self.texts = [r.row.text[:limit] for r in results]
        self.ctx = [flatten_context(r.row.context) for r in results]
        self._pattern_cache: list[dict[str, bool]] = [{} for _ in results]
        scores = np.full((len(results), len(self.concepts)), -np.inf)
        for i, r in enumerate(results):
            for c, j in self.cidx.items():
                sc = r.scores.get(c)
                if sc is not None and sc.clears_counter:
                    scores[i, j] = sc.score
        self.scores = scores  # effective score: the concept fires at t iff score >= t
        self.static = [[self.truth(i, k, None) if not self.dynamic[k] else False for k in range(len(self.rules))]
                       for i in range(len(results))]

    def _atom(self, e: n.Expr, i: int, fired: np.ndarray | None) -> bool:
        if isinstance(e, (n.Matches, n.Contains)):
            if e.subject != "input":
                return False
            name = e.pattern.value if isinstance(e, n.Matches) else e.words.value
            cache = self._pattern_cache[i]
            if name not in cache:
                cache[name] = next(iter(self.policy.patterns[name].finditer(self.texts[i])), None) is not None
            return cache[name]
        if isinstance(e, n.Similar):
            j = self.cidx.get(e.concept.value)
            return e.subject == "input" and j is not None and fired is not None and bool(fired[j])
        ctx = self.ctx[i]
        if isinstance(e, n.Compare):
            actual = ctx.get(e.path)
            return actual is not None and _compare(actual, e.op, e.value)
        if isinstance(e, n.InList):
            actual = ctx.get(e.path)
            return actual is not None and any(_compare(actual, "==", v) for v in e.values)
        if isinstance(e, n.Exists):
            return ctx.get(e.path) is not None
        if isinstance(e, n.Not):
            return not self._atom(e.operand, i, fired)
        if isinstance(e, n.And):
            return all(self._atom(x, i, fired) for x in e.operands)
        if isinstance(e, n.Or):
            return any(self._atom(x, i, fired) for x in e.operands)
        raise TypeError(f"unknown expression {e!r}")  # pragma: no cover

    def truth(self, i: int, k: int, fired: np.ndarray | None) -> bool:
        return self._atom(self.rules[k].when, i, fired)

    def truths(self, i: int, fired: np.ndarray) -> list[bool]:
        return [self.truth(i, k, fired) if self.dynamic[k] else self.static[i][k] for k in range(len(self.rules))]

    def action(self, truths: Sequence[bool]) -> str:
        return combine([r for r, t in zip(self.rules, truths) if t], self.policy.default).action


# ---- search -------------------------------------------------------------------------------------------------------


@dataclass
class _State:
    model: DecisionModel
    T: np.ndarray  # thresholds, per concept
    safe: np.ndarray
    unsafe: np.ndarray

    def __post_init__(self) -> None:
        m = self.model
        self.fired = m.scores >= self.T[None, :]
        self.truth = [m.truths(i, self.fired[i]) for i in range(len(m.texts))]
        self.blocked = np.array([m.action(t) == "block" for t in self.truth], dtype=bool)
        R, C = m.scores.shape
        self.on = np.zeros((C, R), dtype=bool)
        self.off = np.zeros((C, R), dtype=bool)
        for c in range(C):
            self._onoff(c, range(R))

    def _onoff(self, c: int, rows: Any) -> None:
        m = self.model
        ks = m.rules_of[c]
        for i in rows:
            if not ks:
                self.on[c, i] = self.off[c, i] = self.blocked[i]
                continue
            for forced, target in ((True, self.on), (False, self.off)):
                f = self.fired[i].copy()
                f[c] = forced
                t = list(self.truth[i])
                for k in ks:
                    t[k] = m.truth(i, k, f)
                target[c, i] = m.action(t) == "block"

    def counts(self) -> tuple[int, int]:
        return int((self.blocked & self.safe).sum()), int((self.blocked & self.unsafe).sum())

    def concept_fr(self, c: int) -> int:
        return int((self.fired[:, c] & self.on[c] & ~self.off[c] & self.safe).sum())

    def moves(self, c: int, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each candidate threshold of concept c: (false refusals, catches, false refusals caused by c)."""
        fires = self.model.scores[:, c][None, :] >= grid[:, None]
        nb = np.where(fires, self.on[c][None, :], self.off[c][None, :])
        caused = fires & self.on[c][None, :] & ~self.off[c][None, :]
        return (nb & self.safe).sum(1), (nb & self.unsafe).sum(1), (caused & self.safe).sum(1)

    def apply(self, c: int, t: float) -> None:
        m = self.model
        self.T[c] = t
        new = m.scores[:, c] >= t
        rows = np.nonzero(new != self.fired[:, c])[0]
        self.fired[:, c] = new
        for i in rows:
            self.truth[i] = m.truths(i, self.fired[i])
            self.blocked[i] = m.action(self.truth[i]) == "block"
        for cc in range(len(m.concepts)):
            self._onoff(cc, rows)


def search(model: DecisionModel, T0: np.ndarray, safe: np.ndarray, unsafe: np.ndarray, max_fr: int,
           max_concept_fr: int, grid: np.ndarray = GRID, max_steps: int = 10_000) -> tuple[np.ndarray, bool]:
    """Thresholds (per concept) maximising catches with false refusals <= max_fr overall and <= max_concept_fr caused
    by any one concept. Returns (thresholds, feasible)."""
    st = _State(model, T0.astype(float).copy(), safe, unsafe)
    C = len(model.concepts)
    for _ in range(max_steps):  # phase 1: get within budget
        fr, ca = st.counts()
        cfr = [st.concept_fr(c) for c in range(C)]
        if fr <= max_fr and all(x <= max_concept_fr for x in cfr):
            break
        best: tuple | None = None
        for c in range(C):
            FR, CA, CFR = st.moves(c, grid)
            if fr > max_fr:
                gain = fr - FR
            elif cfr[c] > max_concept_fr:
                gain = cfr[c] - CFR
            else:
                continue
            loss = np.maximum(ca - CA, 0)
            for g in np.nonzero(gain > 0)[0]:
                key = (gain[g] / (loss[g] + 1), -loss[g], grid[g])
                if best is None or key > best[0]:
                    best = (key, c, float(grid[g]))
        if best is None:
            return st.T, False
        st.apply(best[1], best[2])
    for _ in range(max_steps):  # phase 2: catch more within budget
        fr, ca = st.counts()
        best = None
        for c in range(C):
            FR, CA, CFR = st.moves(c, grid)
            ok = (FR <= max_fr) & (CFR <= max_concept_fr) & (CA > ca)
            for g in np.nonzero(ok)[0]:
                gain, cost = CA[g] - ca, max(FR[g] - fr, 0)
                key = (gain / (cost + 1), gain, grid[g])
                if best is None or key > best[0]:
                    best = (key, c, float(grid[g]))
        if best is None:
            break
        st.apply(best[1], best[2])
    # phase 3: centre each changed threshold between the consequential rows on either side of it
    for c in range(C):
        if math.isclose(st.T[c], T0[c]):
            continue
        s = model.scores[:, c]
        matters = (st.on[c] != st.off[c]) & np.isfinite(s)
        below = s[matters & (s < st.T[c])]
        above = s[matters & (s >= st.T[c])]
        lo = float(below.max()) if len(below) else None
        hi = float(above.min()) if len(above) else None
        if lo is None or hi is None:
            continue  # one-sided: keep the grid value the search chose
        t = round((lo + hi) / 2, 3)
        if lo < t <= hi and 0 < t <= 1:
            st.T[c] = t
    fr, _ = st.counts()
    return st.T, fr <= max_fr and all(st.concept_fr(c) <= max_concept_fr for c in range(C))


# ---- the command's result -----------------------------------------------------------------------------------------


@dataclass
class ConceptChange:
    concept: str
    source: str
    old: float
    new: float
    before: tuple[int, int]  # (false refusals, catches) decided by a rule using this concept, with it firing
    after: tuple[int, int]
    newly_blocked: list[RowResult] = field(default_factory=list)  # rows (after) whose action became block
    newly_allowed: list[RowResult] = field(default_factory=list)  # rows (after) that were blocked before

    @property
    def changed(self) -> bool:
        return not math.isclose(self.old, self.new)


@dataclass
class Calibration:
    policy: str
    max_frr: float
    max_concept_frr: float
    feasible: bool
    before: Metrics
    after: Metrics
    changes: list[ConceptChange]
    before_results: list[RowResult]
    after_results: list[RowResult]
    model_mismatches: int  # rows where the search's model disagreed with the real engine (should be 0)
    data_files: dict[str, str]  # path -> sha256
    conservative: bool = True
    allowed: int = 0  # false refusals the budget allows on these rows

    @property
    def new_thresholds(self) -> dict[str, float]:
        return {c.concept: c.new for c in self.changes if c.changed}

    def render_text(self) -> str:
        how = ("the upper end of its 95% interval" if self.conservative else "the point estimate")
        out = [f"calibrate {self.policy}: maximise catch with false refusals <= {100 * self.max_frr:.2f}% overall "
               f"and <= {100 * self.max_concept_frr:.2f}% per concept ({how})",
               f"rows: {self.before.frr.n} safe, {self.before.catch.n} unsafe, from "
               + (", ".join(self.data_files) or "(rows in memory)"),
               f"budget on these rows: at most {max(self.allowed, 0)} false refusals"
               + ("" if self.allowed >= 0 else f" — too few safe rows: even 0/{self.before.frr.n} has an upper bound "
                  f"above {100 * self.max_frr:.2f}%; add safe rows or use --point-estimate"), ""]
        w = max([len(c.concept) for c in self.changes] + [7])
        out.append(f"{'concept':{w}}  {'threshold':>15}  {'FR before→after':>15}  {'catch before→after':>18}  "
                   f"{'rows that flip':>30}  source")
        for c in self.changes:
            arrow = f"{c.old:.3f} → {c.new:.3f}" if c.changed else f"{c.old:.3f} (same)"
            nb_s = sum(not r.row.unsafe for r in c.newly_blocked)
            nb_u = len(c.newly_blocked) - nb_s
            na_s = sum(not r.row.unsafe for r in c.newly_allowed)
            na_u = len(c.newly_allowed) - na_s
            flips = f"+{nb_s} safe +{nb_u} unsafe / -{na_s} safe -{na_u} unsafe" if c.changed else "-"
            out.append(f"{c.concept:{w}}  {arrow:>15}  {f'{c.before[0]} → {c.after[0]}':>15}  "
                       f"{f'{c.before[1]} → {c.after[1]}':>18}  {flips:>30}  {c.source}")
        out += ["", f"{'':9}{'false refusals':>32}  {'catch':>32}",
                f"{'before':9}{self.before.frr.pct():>32}  {self.before.catch.pct():>32}",
                f"{'after':9}{self.after.frr.pct():>32}  {self.after.catch.pct():>32}"]
        flipped = [(a, b) for a, b in zip(self.before_results, self.after_results) if a.action != b.action]
        if flipped:
            out += ["", f"rows whose action changes ({len(flipped)}):"]
            for a, b in flipped[:40]:
                out.append(f"  {a.action:>6} → {b.action:<6} [{b.row.label}] {b.row.id} "
                           f"({b.decision.rule or a.decision.rule}): {_short(b.row.text)}")
            if len(flipped) > 40:
                out.append(f"  ... and {len(flipped) - 40} more")
        if not self.feasible:
            out += ["", "the budget cannot be met by thresholds alone: the remaining false refusals come from rules "
                    "that do not depend on a threshold (regexes, word lists, context) or from concepts whose "
                    "counter-examples do not separate them; see `policyengine score` for the rules behind them"]
        if self.model_mismatches:
            out += ["", f"warning: the search's model of the policy disagreed with the engine on "
                    f"{self.model_mismatches} rows; the figures above are the engine's"]
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "max_frr": self.max_frr, "max_concept_frr": self.max_concept_frr,
                "conservative": self.conservative, "allowed_false_refusals": self.allowed, "feasible": self.feasible, "before": self.before.to_dict(), "after": self.after.to_dict(),
                "data": self.data_files,
                "concepts": [{"concept": c.concept, "source": c.source, "old": c.old, "new": c.new,
                              "false_refusals": list(c.before), "false_refusals_after": c.after[0],
                              "catches": c.before[1], "catches_after": c.after[1],
                              "newly_blocked": [r.row.id for r in c.newly_blocked],
                              "newly_allowed": [r.row.id for r in c.newly_allowed]} for c in self.changes],
                "model_mismatches": self.model_mismatches}


def _short(text: str, k: int = 100) -> str:
    t = " ".join(text.split())
    return repr(t if len(t) <= k else t[:k - 1] + "…")


def with_thresholds(policy: CompiledPolicy, thresholds: dict[str, float]) -> CompiledPolicy:
    concepts = {name: dataclasses.replace(spec, threshold=thresholds.get(name, spec.threshold))
                for name, spec in policy.concepts.items()}
    return dataclasses.replace(policy, concepts=concepts)


def _attributed(policy: CompiledPolicy, results: Sequence[RowResult], concept: str, t: float) -> tuple[int, int]:
    fr = ca = 0
    for r in results:
        if not r.blocked or r.decision.rule is None:
            continue
        rule = policy.rule(r.decision.rule)
        uses = any(isinstance(a, n.Similar) and a.concept.value == concept for a in walk(rule.when))
        sc = r.scores.get(concept)
        if uses and sc is not None and sc.fires_at(t):
            if r.row.unsafe:
                ca += 1
            else:
                fr += 1
    return fr, ca


def budget_count(max_frr: float, n_safe: int, conservative: bool) -> int:
    """Most false refusals allowed among n_safe rows: the point estimate k/n <= max_frr, or (conservative) the upper
    end of k's 95% Wilson interval <= max_frr, so the budget also holds, with 95% confidence, on rows like these that
    calibration did not see. -1 when not even 0 false refusals qualifies (too few safe rows for that budget)."""
    if not conservative:
        return math.floor(max_frr * n_safe + 1e-9)
    k = -1
    while k + 1 <= n_safe and (wilson(k + 1, n_safe).high or 0.0) <= max_frr + 1e-12:
        k += 1
    return k


def calibrate(policy_path: str, data: dict[str, list], max_frr: float, max_concept_frr: float | None = None, *,
              conservative: bool = True,
              threads: int = 1, progress: bool | None = None, grid: np.ndarray = GRID,
              embedder: Any = None) -> Calibration:
    from .data import sha256_file

    engine = build_engine(policy_path, threads=threads, embedder=embedder)
    policy = engine.policy
    rows = [r for rs in data.values() for r in rs]
    before = run_rows(engine, rows, progress=progress, desc="calibrate")
    concepts = sorted(c for c in policy.used_concepts if c in policy.concepts)
    mcf = max_frr if max_concept_frr is None else max_concept_frr
    safe = np.array([not r.row.unsafe for r in before], dtype=bool)
    unsafe = ~safe
    n_safe = int(safe.sum())
    T0 = np.array([policy.concepts[c].threshold for c in concepts], dtype=float)
    feasible = True
    T = T0.copy()
    if concepts:
        model = DecisionModel(policy, before, concepts)
        k, kc = budget_count(max_frr, n_safe, conservative), budget_count(mcf, n_safe, conservative)
        T, feasible = search(model, T0, safe, unsafe, max(k, 0), max(kc, 0), grid)
        feasible = feasible and k >= 0 and kc >= 0
    new = {c: float(t) for c, t in zip(concepts, T) if not math.isclose(t, policy.concepts[c].threshold)}
    new_policy = with_thresholds(policy, new)
    after = run_rows(build_engine(new_policy, threads=threads, embedder=embedder), rows, progress=False) \
        if new else before
    mismatches = 0
    if concepts:
        fired = model.scores >= T[None, :]
        mismatches = sum(model.action(model.truths(i, fired[i])) != a.action for i, a in enumerate(after))
    changes = []
    for c, t0, t in zip(concepts, T0, T):
        ch = ConceptChange(c, str(policy.concepts[c].span), float(t0), float(t),
                           _attributed(policy, before, c, float(t0)), _attributed(new_policy, after, c, float(t)))
        if ch.changed:
            for b, a in zip(before, after):
                sc = a.scores.get(c)
                if sc is None or sc.fires_at(float(t0)) == sc.fires_at(float(t)) or a.action == b.action:
                    continue
                (ch.newly_blocked if a.blocked else ch.newly_allowed if b.blocked else []).append(a)
        changes.append(ch)
    changes.sort(key=lambda ch: (not ch.changed, ch.concept))
    return Calibration(policy.entry, max_frr, mcf, feasible, metrics("before", before), metrics("after", after),
                       changes, before, after, mismatches, {p: sha256_file(p) for p in data if Path(p).is_file()},
                       conservative, budget_count(max_frr, n_safe, conservative))


# ---- --from-policy: thresholds from the policy's own text, no data --------------------------------------------------


@dataclass(frozen=True)
class BenignCeiling:
    """A concept's threshold set just above the highest score any benign text of the policy reaches on it while
    clearing its counter-examples (+ margin): the background set of policyengine/intent and every other concept's
    counter-examples. `text` is that benign text (None when none clears the counters: the threshold is kept)."""

    concept: str
    source: str
    old: float
    new: float
    text: str | None
    score: float | None
    benign: int  # how many benign texts were compared

    @property
    def changed(self) -> bool:
        return not math.isclose(self.old, self.new)


def benign_ceilings(engine: Any) -> list[BenignCeiling]:
    """For every concept the engine's rules use, in the engine's own space (plain, +contrastive or +finetune)."""
    from ..intent.contrastive import background_texts

    index = engine._index
    if index is None:
        return []
    policy = engine.policy
    background = background_texts()
    names = sorted(index.concepts)
    # every benign text is embedded (and mapped into the policy's space) once, then scored against each concept
    pool = list(dict.fromkeys([*background, *(t for c in names for t in policy.concepts[c].counter)]))
    vecs = index.to_space(engine._encode(pool))
    in_background = set(background)
    out = []
    for c in names:
        spec = policy.concepts[c]
        own = set(spec.examples)
        others = {t for o in names if o != c for t in policy.concepts[o].counter}
        rows = [i for i, t in enumerate(pool) if t in in_background or (t in others and t not in own)]
        benign = [pool[i] for i in rows]
        sc = index.score(c, vecs[rows], mapped=True)
        clear = np.nonzero(sc.ex_score > sc.ctr_score + spec.margin)[0]
        if len(clear):
            i = int(clear[np.argmax(sc.ex_score[clear])])
            top = float(sc.ex_score[i])
            new = min(1.0, math.floor(top * 1000 + 1e-9) / 1000 + 0.001)
            out.append(BenignCeiling(c, str(spec.span), spec.threshold, new, benign[i], top, len(benign)))
        else:
            out.append(BenignCeiling(c, str(spec.span), spec.threshold, spec.threshold, None, None, len(benign)))
    return out


def render_ceilings(policy_name: str, model: str, rows: Sequence[BenignCeiling]) -> str:
    w = max([len(r.concept) for r in rows] + [7])
    out = [f"calibrate {policy_name} --from-policy: each threshold just above the best score that benign text of the "
           f"policy reaches while clearing the concept's counter-examples (model {model})",
           f"benign text: the background set and the other concepts' counter-examples ({rows[0].benign if rows else 0}"
           " texts for the first concept); no labelled data is used", "",
           f"{'concept':{w}}  {'threshold':>15}  highest benign text (score)  source"]
    for r in rows:
        arrow = f"{r.old:.3f} → {r.new:.3f}" if r.changed else f"{r.old:.3f} (same)"
        why = f"{_short(r.text, 70)} ({r.score:.3f})" if r.text is not None else "none clears the counter-examples"
        out.append(f"{r.concept:{w}}  {arrow:>15}  {why}  {r.source}")
    return "\n".join(out)


# ---- --write: rewrite only the threshold literals -----------------------------------------------------------------

_CALIBRATED_COMMENT = re.compile(r"[ \t]*#[ \t]*calibrated\b[^\n]*$")


def threshold_literals(source_text: str) -> dict[str, tuple[int, int]]:
    """concept name -> (start, end) character offsets of its threshold NUMBER token, from the real parser."""
    from lark import Token, Tree

    from ..syntax.parser import grammar

    out: dict[str, tuple[int, int]] = {}
    tree = grammar().parse(source_text)
    for node in tree.iter_subtrees():
        if not isinstance(node, Tree) or node.data != "concept_def":
            continue
        name = node.children[0]
        for field_ in node.children[1:]:
            if isinstance(field_, Tree) and field_.data == "c_threshold":
                tok = field_.children[0]
                assert isinstance(tok, Token) and tok.start_pos is not None and tok.end_pos is not None
                out[str(name)] = (tok.start_pos, tok.end_pos)
    return out


def format_threshold(t: float) -> str:
    s = f"{t:.3f}".rstrip("0")
    return s + "0" if s.endswith(".") else (s if len(s.split(".")[1]) >= 2 else s + "0")


def rewrite_thresholds(policy: CompiledPolicy, new: dict[str, float], data_files: dict[str, str],
                       today: _dt.date | None = None, note: str | None = None) -> list[str]:
    """Rewrite each changed threshold literal in the file that defines its concept, and put beside it a comment with
    the date, the old value and the sha256 of each data file. Everything else in the files is kept byte for byte.
    Returns the files written. The result is compiled again; on any error nothing is left changed."""
    today = today or _dt.date.today()
    data_note = note or "; ".join(f"{Path(p).name} sha256:{h}" for p, h in data_files.items())
    by_file: dict[str, dict[str, float]] = {}
    for concept, t in new.items():
        by_file.setdefault(policy.concepts[concept].span.file, {})[concept] = t
    originals: dict[Path, str] = {}
    try:
        for display, changes in by_file.items():
            path = Path(display)
            text = path.read_text(encoding="utf-8")
            originals[path] = text
            spans = threshold_literals(text)
            edits = []
            for concept, t in changes.items():
                if concept not in spans:
                    raise RuntimeError(f"{display}: threshold of concept '{concept}' not found")
                s, e = spans[concept]
                old = text[s:e]
                eol = text.find("\n", e)
                eol = len(text) if eol < 0 else eol
                rest = _CALIBRATED_COMMENT.sub("", text[e:eol])
                note = f"  # calibrated {today.isoformat()} (was {old}) on {data_note}"
                edits.append((s, eol, format_threshold(t) + rest + note))
            for s, e, repl in sorted(edits, reverse=True):
                text = text[:s] + repl + text[e:]
            path.write_text(text, encoding="utf-8")
        check = compile_policy(policy.entry)
        for concept, t in new.items():
            got = check.concepts[concept].threshold
            if not math.isclose(got, float(format_threshold(t))):
                raise RuntimeError(f"concept '{concept}': wrote {format_threshold(t)} but the file now says {got}")
    except BaseException:
        for path, text in originals.items():
            path.write_text(text, encoding="utf-8")
        raise
    return [str(p) for p in originals]
