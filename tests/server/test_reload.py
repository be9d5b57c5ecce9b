"""Hot reload under load: a changed policy is swapped in atomically, a broken one is rejected while the old one
keeps serving, and no request fails or sees a mix of two policies."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from policyengine.server import ServerConfig, create_app

from .conftest import serve_app, wait_for, wait_ready

POLICY = """\
policy reloadable {{
  version "{version}"
  default allow
}}

concept weather {{
  examples {{ "what is the weather like today" "will it rain tomorrow" }}
  threshold 0.5
}}

rule no_weather {{
  when input similar weather
  block "{message}"
}}
"""


def _write(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name + ".tmp")  # editors and deploy tools replace files atomically
    tmp.write_text(text)
    tmp.replace(path)


def test_file_change_and_broken_policy_under_load(tmp_path, fake_embedder):
    d = tmp_path / "pol"
    d.mkdir()
    policy = d / "main.policy"
    _write(policy, POLICY.format(version="1", message="v1"))
    app = create_app(ServerConfig(policy=str(policy), watch=(str(d),), reload_debounce_ms=50),
                     embedder=fake_embedder)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        v1 = wait_ready(client)["policy"]["digest"]
        stop = threading.Event()
        seen: list[tuple[int, str | None, str | None]] = []
        failures: list[str] = []

        def hammer() -> None:
            with httpx.Client(base_url=url, timeout=10) as c:
                while not stop.is_set():
                    try:
                        r = c.post("/v1/check", json={"input": "will it rain tomorrow"})
                        body = r.json()
                        seen.append((r.status_code, body.get("policy", {}).get("digest"), body.get("message")))
                        if r.status_code != 200:
                            failures.append(r.text)
                    except Exception as e:  # noqa: BLE001
                        failures.append(repr(e))

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            assert wait_for(lambda: len(seen) > 20)
            _write(policy, POLICY.format(version="2", message="v2"))
            assert wait_for(lambda: client.get("/readyz").json()["policy"]["digest"] != v1), "no reload"
            v2 = client.get("/readyz").json()["policy"]["digest"]
            assert wait_for(lambda: any(s[1] == v2 for s in seen[-5:]))
            n = len(seen)
            _write(policy, POLICY.format(version="3", message="v3").replace("similar weather", "similar wether"))
            assert wait_for(lambda: client.get("/readyz").json()["last_reload_error"] is not None), "no reject"
            err = client.get("/readyz").json()["last_reload_error"]
            assert "main.policy:12" in err and "wether" in err
            assert wait_for(lambda: len(seen) > n + 20)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        assert not failures, failures[:3]
        assert client.get("/readyz").json()["policy"]["digest"] == v2  # the broken policy never went live
        # every answer came from exactly one policy: its digest and its block message agree
        assert {(digest, msg) for _, digest, msg in seen} == {(v1, "v1"), (v2, "v2")}
        metrics = client.get("/metrics").text
        assert 'policyengine_reloads_total{result="error"} 1.0' in metrics
        assert f'policyengine_policy_info{{digest="{v2}",name="reloadable"}} 1.0' in metrics

        # fixing the file brings the new policy in
        _write(policy, POLICY.format(version="4", message="v4"))
        assert wait_for(lambda: client.post("/v1/check", json={"input": "will it rain tomorrow"}).json()["message"]
                        == "v4")
        assert client.get("/readyz").json()["last_reload_error"] is None


def test_unchanged_file_does_not_swap(tmp_path, small_policy):
    app = create_app(ServerConfig(policy=str(small_policy)))
    holder = app.state.holder
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        wait_ready(client)
        engine = holder.engine
        result = holder.reload("test")
        assert result.status == "unchanged" and holder.engine is engine and holder.generation == 1


def test_serving_a_bundle_reloads_when_the_bundle_is_replaced(tmp_path, fake_embedder):
    """`serve BUNDLE`: the engine comes from the bundle (nothing re-embedded); writing a new bundle over it swaps the
    policy; a bundle made stale by an edited source is rejected and the one in service stays."""
    from policyengine.bundle import write_bundle
    from policyengine.server.holder import PolicyHolder

    src = tmp_path / "main.policy"
    src.write_text(POLICY.format(version="1", message="v1"))
    bundle = tmp_path / "main.pebundle"
    write_bundle(src, bundle, embedder=fake_embedder)

    calls: list[int] = []

    class Counting:
        model_id = fake_embedder.model_id
        backend = getattr(fake_embedder, "backend", "torch")

        def encode(self, texts):
            calls.append(len(texts))
            return fake_embedder.encode(texts)

    holder = PolicyHolder(str(bundle), embedder=Counting())
    assert holder.reload("start").status == "loaded"
    assert holder.engine.bundle == str(bundle) and not calls  # exemplars came from the bundle
    assert holder.engine.evaluate(input="will it rain tomorrow").message == "v1"
    assert holder.reload("again").status == "unchanged"

    src.write_text(POLICY.format(version="2", message="v2"))
    write_bundle(src, bundle, embedder=fake_embedder)
    assert holder.reload("new bundle").status == "loaded"
    assert holder.engine.evaluate(input="will it rain tomorrow").message == "v2"

    src.write_text(POLICY.format(version="3", message="v3"))  # edited, bundle not rebuilt
    result = holder.reload("stale")
    assert result.status == "error" and "stale bundle" in result.error
    assert holder.engine.evaluate(input="will it rain tomorrow").message == "v2"


def test_serve_refuses_an_unusable_bundle_before_binding(tmp_path, capsys):
    from policyengine.cli.main import main

    broken = tmp_path / "broken.pebundle"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["serve", str(broken), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "not a policyengine bundle" in err and "Traceback" not in err


def test_holder_passes_limits_to_policy_and_bundle_engines(tmp_path, fake_embedder):
    from policyengine.bundle import write_bundle
    from policyengine.evaluator import Limits
    from policyengine.server.holder import PolicyHolder

    src = tmp_path / "main.policy"
    src.write_text(POLICY.format(version="1", message="v1"))
    write_bundle(src, tmp_path / "main.pebundle", embedder=fake_embedder)
    for path in (src, tmp_path / "main.pebundle"):
        holder = PolicyHolder(str(path), embedder=fake_embedder, limits=Limits(max_input_chars=10, on_oversize="block"))
        assert holder.reload("start").status == "loaded"
        d = holder.engine.evaluate(input="will it rain tomorrow")
        assert d.action == "block" and d.rule is None, (path, d.explain())
