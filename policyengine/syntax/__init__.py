"""Syntax layer: .policy text -> typed nodes. Lark types never leave this package."""

from .parser import Comment, Lexeme, ParsedFile, parse_policy, parse_with_comments

__all__ = ["Comment", "Lexeme", "ParsedFile", "parse_policy", "parse_with_comments"]
