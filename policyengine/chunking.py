"""Split a message into the chunks that concepts are matched against, keeping spans into the original text."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$|\n)", re.M)
_WORD = re.compile(r"\S+")

WINDOW_WORDS = 48
WINDOW_STRIDE = 24
WHOLE_MESSAGE_MAX_WORDS = 96


@dataclass(frozen=True)
class Chunk:
    start: int
    end: int
    text: str


def chunk_text(text: str, max_chunks: int) -> tuple[list[Chunk], int]:
    """Sentences; windows of WINDOW_WORDS words (stride WINDOW_STRIDE) inside long sentences; and the whole message
    when it has several sentences and is short, so a request spread over two sentences is still seen whole.
    Returns (chunks, total): at most max_chunks chunks (past that, `sample_spans` picks which) and how many the
    text has."""
    spans: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()

    def add(start: int, end: int) -> None:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start and (start, end) not in seen and any(c.isalnum() for c in text[start:end]):
            seen.add((start, end))
            spans.append((start, end))

    sentences = 0
    for m in _SENTENCE.finditer(text):
        sentences += 1
        s, e = m.start(), m.end()
        words = [(w.start(), w.end()) for w in _WORD.finditer(text, s, e)]
        if len(words) <= WINDOW_WORDS:
            add(s, e)
        else:
            for i in range(0, len(words) - WINDOW_STRIDE, WINDOW_STRIDE):
                window = words[i:i + WINDOW_WORDS]
                add(window[0][0], window[-1][1])
    if sentences > 1 and len(_WORD.findall(text)) <= WHOLE_MESSAGE_MAX_WORDS:
        add(0, len(text))
    total = len(spans)
    if total > max_chunks:
        spans = sample_spans(spans, max_chunks)
    return [Chunk(s, e, text[s:e]) for s, e in spans], total


def sample_spans(spans: list[tuple[int, int]], k: int) -> list[tuple[int, int]]:
    """The k chunks of a long text that concepts are compared on (docs/hardening.md, "Limits"): the first half of
    the budget in order from the start (where a request usually is), the rest spread evenly over the remaining
    chunks, the last chunk always included, so no part of a long text is out of reach by position alone."""
    if len(spans) <= k:
        return list(spans)
    head = (k + 1) // 2
    rest = spans[head:]
    m = k - head
    if m <= 0:
        return spans[:k]
    if m == 1:
        return spans[:head] + [rest[-1]]
    # m indices spread evenly over rest, first and last included
    picks = [round(i * (len(rest) - 1) / (m - 1)) for i in range(m)]
    return spans[:head] + [rest[i] for i in picks]
