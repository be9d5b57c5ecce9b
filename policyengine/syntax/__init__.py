"""Syntax layer: .policy text -> typed nodes. Lark types never leave this package."""

from .parser import parse_policy

__all__ = ["parse_policy"]
