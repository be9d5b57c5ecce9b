"""The server's SlicedEmbedder: length-sorted slices (the model pads a batch to its longest text), rows back in the
caller's order, and the same embeddings as one unsliced call."""

from __future__ import annotations

import numpy as np
import pytest

from policyengine.server.holder import SlicedEmbedder

TEXTS = ["hi", "a much longer message about the weather tomorrow and the day after, with details " * 3, "ok",
         "will it rain", "x" * 300, "what is the weather like today", "no", "a medium sized message here"] * 5


class Recording:
    model_id = "fake"

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def encode(self, texts):
        self.calls.append(list(texts))
        return self.inner.encode(texts)


def test_slices_are_length_sorted_bounded_and_rows_keep_their_order(fake_embedder):
    rec = Recording(fake_embedder)
    sliced = SlicedEmbedder(rec, max_slice=8, budget=512)
    out = sliced.encode(TEXTS)
    assert np.allclose(out, fake_embedder.encode(TEXTS))  # row i is text i
    assert sorted(t for c in rec.calls for t in c) == sorted(TEXTS) and len(rec.calls) > 1
    for call in rec.calls:
        lengths = [len(t) for t in call]
        assert lengths == sorted(lengths) and len(call) <= 8
        assert len(call) == 1 or len(call) * max(max(lengths), 16) <= 512  # one long text may stand alone
    widths = [max(len(t) for t in c) for c in rec.calls]
    assert widths == sorted(widths)  # short texts never share a slice with the longest ones
    assert SlicedEmbedder(rec).encode([]).shape[0] == 0


@pytest.mark.model
def test_sliced_embeddings_equal_one_batch_with_the_real_model(real_embedder):
    sliced = SlicedEmbedder(real_embedder, max_slice=4, budget=256)
    a = sliced.encode(TEXTS[:8])
    b = np.vstack([real_embedder.encode([t]) for t in TEXTS[:8]])  # each text alone: no padding at all
    assert a.shape == b.shape and np.allclose(a, b, atol=1e-4)
