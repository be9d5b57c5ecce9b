"""Validators a pattern may name with `validate NAME`: a match only counts when its text passes."""

from __future__ import annotations

from typing import Callable


def luhn(text: str) -> bool:
    digits = [int(c) for c in text if c.isdigit()]
    if len(digits) < 12:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban(text: str) -> bool:
    s = "".join(c for c in text if c.isalnum()).upper()
    if len(s) < 15 or len(s) > 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    rearranged = s[4:] + s[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


VALIDATORS: dict[str, Callable[[str], bool]] = {"luhn": luhn, "iban": iban}
