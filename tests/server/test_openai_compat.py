"""/v1/moderations with the official `openai` client pointed at the local server, on the real MiniLM model."""

from __future__ import annotations

import httpx
import pytest

from policyengine.server import ServerConfig, create_app

from .conftest import serve_app, wait_ready

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.model

POLICY = """\
policy compat {
  version "1"
  default allow
}

concept violent_threat {
  examples {
    "I am going to kill you"
    "I will hurt you and your family"
    "you are going to die tonight, I know where you live"
  }
  counter { "this game is killing me" "the movie had a violent scene" }
  threshold 0.6
}

pattern card = /\\b(?:\\d[ -]?){13,16}\\b/

rule threats {
  when input similar violent_threat
  block "threats are not allowed"
  severity high
  category "violent_crimes"
}

rule card_numbers {
  when input matches card
  redact card with "[CARD]"
  category "pii"
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, real_embedder):
    p = tmp_path_factory.mktemp("compat") / "compat.policy"
    p.write_text(POLICY)
    app = create_app(ServerConfig(policy=str(p), api_keys=("sk-local-test",)), embedder=real_embedder)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        wait_ready(c)
        yield url


def test_openai_client_single_and_list(server):
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="sk-local-test", max_retries=0, timeout=30)
    r = client.moderations.create(input="I am going to kill you tonight", model="omni-moderation-latest")
    assert r.id.startswith("modr-") and r.model == "policyengine/compat"
    (res,) = r.results
    assert res.flagged is True
    assert res.categories.violence is True and res.categories.hate is False
    assert res.category_scores.violence >= 0.6  # the similarity score of the match
    extra = res.model_extra or {}
    decision = extra["policyengine"]
    assert decision["rule"] == "threats" and decision["reasons"][0]["evidence"][0]["kind"] == "similarity"
    assert res.categories.model_extra["violent_crimes"] is True  # the policy's own category too

    r = client.moderations.create(input=["what a lovely day for a walk", "my card is 4111 1111 1111 1111"])
    calm, card = r.results
    assert calm.flagged is False and calm.categories.violence is False
    assert 0.0 <= calm.category_scores.violence < 0.6
    assert card.flagged is True and card.model_extra["policyengine"]["action"] == "redact"
    assert card.categories.model_extra["pii"] is True and card.category_scores.model_extra["pii"] == 1.0
    assert card.model_extra["policyengine"]["redacted"] == "my card is [CARD]"


def test_openai_client_errors_are_clear(server):
    bad = openai.OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.moderations.create(input="hello")
    assert "invalid API key" in str(e.value)
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="sk-local-test", max_retries=0, timeout=30)
    with pytest.raises(openai.BadRequestError) as e:
        client.moderations.create(input=[{"type": "image_url", "image_url": {"url": "http://x/y.png"}}])
    assert "only text inputs are supported" in str(e.value)
    with pytest.raises(openai.UnprocessableEntityError):
        client.moderations.create(input=[])


def test_check_uses_the_real_model_with_microbatching(server):
    import concurrent.futures as cf

    texts = ["I will hurt you and your family", "the weather is nice"] * 16
    with httpx.Client(base_url=server, timeout=30, headers={"x-api-key": "sk-local-test"}) as c:
        def one(t):
            return c.post("/v1/check", json={"input": t}).json()

        with cf.ThreadPoolExecutor(16) as ex:
            out = list(ex.map(one, texts))
        assert [d["action"] for d in out] == ["block", "allow"] * 16
        assert all(d["model"] == "sentence-transformers/all-MiniLM-L6-v2" for d in out)
        metrics = c.get("/metrics").text
    # concurrent single checks were embedded together in at least one batch of more than one message
    count = float(next(ln.split()[-1] for ln in metrics.splitlines()
                       if ln.startswith("policyengine_batch_size_count")))
    assert count < 32 + 2
