"""counter-matches-concept: its annotated fixture, with the real embedding model."""

import pytest

from ..helpers import check_fixture

pytestmark = pytest.mark.model


def test_fixture(real_embedder) -> None:
    found = check_fixture("counter-matches-concept", embedder=real_embedder)
    assert all(f.help for f in found)
