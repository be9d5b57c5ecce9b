"""Conditions as sets of literals (DNF), for the rules that reason about when a rule can fire."""

from __future__ import annotations

from typing import Iterable

from .. import nodes as n

Literal = tuple[bool, object]  # (positive?, atom node)
Conj = frozenset[Literal]
MAX_TERMS = 256


def dnf(e: n.Expr | None, positive: bool = True) -> list[Conj] | None:
    """The condition as an OR of ANDs of literals; None when it is too large to expand."""
    if e is None:
        return None
    if isinstance(e, n.Not):
        return dnf(e.operand, not positive)
    if isinstance(e, (n.And, n.Or)):
        conj = isinstance(e, n.And) == positive  # De Morgan
        parts = [dnf(op, positive) for op in e.operands]
        if any(p is None for p in parts):
            return None
        if not conj:
            return [c for p in parts for c in p]  # type: ignore[union-attr]
        out: list[Conj] = [frozenset()]
        for p in parts:
            out = [a | b for a in out for b in p]  # type: ignore[union-attr]
            if len(out) > MAX_TERMS:
                return None
        return out
    return [frozenset({(positive, e)})]


def satisfiable(conj: Iterable[Literal]) -> bool:
    lits = set(conj)
    for pos, atom in lits:
        if pos and (False, atom) in lits:
            return False
    # context constraints per attribute
    by_path: dict[str, list[Literal]] = {}
    for pos, atom in lits:
        if isinstance(atom, (n.Compare, n.InList, n.Exists)):
            by_path.setdefault(atom.path, []).append((pos, atom))
    for path, items in by_path.items():
        if not _path_satisfiable(items):
            return False
    return True


def _path_satisfiable(items: list[Literal]) -> bool:
    must_exist = any(pos and not isinstance(a, n.Exists) or (pos and isinstance(a, n.Exists)) for pos, a in items)
    if must_exist and any(not pos and isinstance(a, n.Exists) for pos, a in items):
        return False  # a comparison on a missing attribute is false
    eq: set = set()
    excluded: set = set()
    allowed: set | None = None
    lo, lo_inc, hi, hi_inc = float("-inf"), True, float("inf"), True
    for pos, a in items:
        if isinstance(a, n.Compare):
            v = a.value
            op = a.op if pos else {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}[a.op]
            if not pos and not must_exist:
                continue  # `not context.x == v` also holds when x is missing
            if op == "==":
                eq.add(_key(v))
            elif op == "!=":
                excluded.add(_key(v))
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                if op in (">", ">=") and (v > lo or (v == lo and op == ">")):
                    lo, lo_inc = v, op == ">="
                if op in ("<", "<=") and (v < hi or (v == hi and op == "<")):
                    hi, hi_inc = v, op == "<="
        elif isinstance(a, n.InList):
            vals = {_key(v) for v in a.values}
            if pos:
                allowed = vals if allowed is None else allowed & vals
            elif must_exist:
                excluded |= vals
    if len(eq) > 1:
        return False
    if allowed is not None and eq:
        allowed &= eq
    candidates = allowed if allowed is not None else eq if eq else None
    if candidates is not None:
        candidates = {c for c in candidates if c not in excluded and _in_range(c, lo, lo_inc, hi, hi_inc)}
        return bool(candidates)
    if lo > hi or (lo == hi and not (lo_inc and hi_inc)):
        return False
    return True


def _key(v: object) -> tuple:
    return (type(v).__name__ if isinstance(v, bool) else "num" if isinstance(v, (int, float)) else "str", v)


def _in_range(c: tuple, lo: float, lo_inc: bool, hi: float, hi_inc: bool) -> bool:
    if c[0] != "num":
        return lo == float("-inf") and hi == float("inf")
    v = c[1]
    return (v > lo or (lo_inc and v == lo)) and (v < hi or (hi_inc and v == hi))


def never(e: n.Expr | None) -> bool:
    terms = dnf(e)
    return terms is not None and not any(satisfiable(t) for t in terms)


def implies(a: n.Expr | None, b: n.Expr | None) -> bool:
    """Sound but incomplete: every AND-term of `a` contains every literal of some AND-term of `b`."""
    ta, tb = dnf(a), dnf(b)
    if ta is None or tb is None:
        return False
    return all(any(t2 <= t1 for t2 in tb) for t1 in ta if satisfiable(t1))


def can_cofire(a: n.Expr | None, b: n.Expr | None) -> bool:
    ta, tb = dnf(a), dnf(b)
    if ta is None or tb is None:
        return True
    return any(satisfiable(x | y) for x in ta for y in tb)
