"""Split a message into the chunks that concepts are matched against, keeping spans into the original text."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$|\n)", re.M)
_WORD = re.compile(r"\S+")
_SURROGATE = re.compile("[\ud800-\udfff]")

WINDOW_WORDS = 48
WINDOW_STRIDE = 24
WHOLE_MESSAGE_MAX_WORDS = 96
#: trained concepts read the text the way their training rows were embedded: whole, or in request-sized windows
REQUEST_WORDS = 160
REQUEST_STRIDE = 80
#: the first element of a chunking key that selects request_windows instead of chunk_text (ConceptSpec.chunking)
REQUEST = "@request"


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


def request_windows(text: str, max_chunks: int) -> tuple[list[Chunk], int]:
    """Chunks for trained concepts, whose classifiers learned from whole requests: the whole text when it has at
    most REQUEST_WORDS words (the model reads ~256 tokens), else windows of REQUEST_WORDS words with a stride of
    REQUEST_STRIDE, the last window ending at the last word. Sentence-sized pieces of a long technical prompt look
    like anything to a classifier trained on whole requests; request-sized windows look like what it learned from.
    Returns (chunks, total) like chunk_text: past max_chunks, `sample_spans` picks which windows are compared."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    if not words or not any(c.isalnum() for c in text):
        return [], 0
    if len(words) <= REQUEST_WORDS:
        return [Chunk(words[0][0], words[-1][1], text[words[0][0]:words[-1][1]])], 1
    starts = list(range(0, len(words) - REQUEST_WORDS + 1, REQUEST_STRIDE))
    if starts[-1] + REQUEST_WORDS < len(words):
        starts.append(len(words) - REQUEST_WORDS)
    spans = [(words[i][0], words[i + REQUEST_WORDS - 1][1]) for i in starts]
    total = len(spans)
    if total > max_chunks:
        spans = sample_spans(spans, max_chunks)
    return [Chunk(s, e, text[s:e]) for s, e in spans], total


def embeddable(text: str) -> str:
    """Text the tokenizer accepts: lone surrogates (invalid UTF-16 halves) become U+FFFD, one char for one."""
    return _SURROGATE.sub("\ufffd", text)
