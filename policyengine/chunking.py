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


def chunk_text(text: str, max_chunks: int) -> tuple[list[Chunk], bool]:
    """Sentences; windows of WINDOW_WORDS words (stride WINDOW_STRIDE) inside long sentences; and the whole message
    when it has several sentences and is short, so a request spread over two sentences is still seen whole.
    Returns (chunks, truncated)."""
    chunks: list[Chunk] = []
    seen: set[tuple[int, int]] = set()

    def add(start: int, end: int) -> None:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start and (start, end) not in seen and any(c.isalnum() for c in text[start:end]):
            seen.add((start, end))
            chunks.append(Chunk(start, end, text[start:end]))

    sentences = [(m.start(), m.end()) for m in _SENTENCE.finditer(text)]
    for s, e in sentences:
        words = [(m.start(), m.end()) for m in _WORD.finditer(text, s, e)]
        if len(words) <= WINDOW_WORDS:
            add(s, e)
        else:
            for i in range(0, len(words) - WINDOW_STRIDE, WINDOW_STRIDE):
                window = words[i:i + WINDOW_WORDS]
                add(window[0][0], window[-1][1])
        if len(chunks) > max_chunks:
            break
    total_words = len(_WORD.findall(text)) if len(sentences) > 1 else 0
    if len(sentences) > 1 and total_words <= WHOLE_MESSAGE_MAX_WORDS:
        add(0, len(text))
    truncated = len(chunks) > max_chunks
    return chunks[:max_chunks], truncated
