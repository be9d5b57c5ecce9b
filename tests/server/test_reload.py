"""Hot reload under load: a changed policy is swapped in atomically, a broken one is rejected while the old one
keeps serving, and no request fails or sees a mix of two policies."""

from __future__ import annotations

import os
import threading
import time
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


WATCHED = """\
import "lists/defs.policy"

policy watched {
  version "1"
  default allow
}

rule no_banned {
  when input contains banned
  block "banned word"
}
"""


def _reloads(client: httpx.Client) -> dict[str, float]:
    out = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("policyengine_reloads_total{"):
            out[line.split('"')[1]] = float(line.rsplit(" ", 1)[1])
    return out


def test_only_the_policys_own_files_trigger_a_reload(tmp_path):
    """Issue 21: logs written into the watched folder (serve.err, *.log, decisions) made a reload loop. Only the
    entry, its imports, the word-list files they read and NAME.cases.yaml reload the policy."""
    d = tmp_path / "pol"
    (d / "lists").mkdir(parents=True)
    _write(d / "main.policy", WATCHED)
    _write(d / "lists" / "defs.policy", 'words banned = file "banned.txt"\n')
    _write(d / "lists" / "banned.txt", "darn\n")
    app = create_app(ServerConfig(policy=str(d / "main.policy"), watch=(str(d),), reload_debounce_ms=50))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        wait_ready(client)
        assert _reloads(client) == {"loaded": 1.0}
        for i in range(5):  # what a process started in the policy folder writes there
            for name in ("serve.err", "serve.out", "notes.txt", "lists/other.txt", "decisions.jsonl", "x.yaml"):
                (d / name).write_text(f"line {i}\n" * (i + 1))
            time.sleep(0.1)
        time.sleep(1.0)  # debounce 50 ms, poll step 50 ms: a reload would have happened by now
        assert _reloads(client) == {"loaded": 1.0}, "a file the policy does not read triggered a reload"

        def check(text: str) -> str:
            return client.post("/v1/check", json={"input": text}).json()["action"]

        assert check("oh heck") == "allow"
        _write(d / "lists" / "banned.txt", "darn\nheck\n")  # a word list read by an import
        assert wait_for(lambda: check("oh heck") == "block"), "editing a word-list file did not reload"
        n = _reloads(client).get("unchanged", 0.0)
        (d / "main.cases.yaml").write_text("cases: []\n")  # the entry's case file: reloads (nothing to swap)
        assert wait_for(lambda: _reloads(client).get("unchanged", 0.0) > n), "NAME.cases.yaml did not reload"
        # an import added before its file exists is rejected; creating the file brings the policy in
        _write(d / "main.policy", 'import "more.policy"\n' + WATCHED)
        assert wait_for(lambda: client.get("/readyz").json()["last_reload_error"] is not None)
        _write(d / "more.policy", 'words more = ["gosh"]\nrule no_more { when input contains more block }\n')
        assert wait_for(lambda: check("gosh") == "block"), "creating the missing import did not reload"
        assert client.get("/readyz").json()["last_reload_error"] is None


def test_a_fixed_policy_clears_last_reload_error(tmp_path, small_policy):
    """Issue 21: a reload that compiles clears the error of the rejected one before it, also when the fix restores
    the very policy in service (nothing to swap)."""
    from policyengine.server.holder import PolicyHolder

    holder = PolicyHolder(str(small_policy))
    assert holder.reload("start").status == "loaded" and holder.last_error is None
    good = small_policy.read_text()
    small_policy.write_text(good.replace("matches secret", "matches secrett"))
    assert holder.reload("broken").status == "error" and "secrett" in holder.last_error
    small_policy.write_text(good)
    result = holder.reload("fixed")
    assert result.status == "unchanged" and holder.last_error is None


def test_a_bundle_reloads_only_on_its_own_file(tmp_path, fake_embedder):
    from policyengine.server.holder import PolicyHolder, is_relevant_change

    src = tmp_path / "main.policy"
    src.write_text(POLICY.format(version="1", message="v1"))
    from policyengine.bundle import write_bundle

    bundle = tmp_path / "main.pebundle"
    write_bundle(src, bundle, embedder=fake_embedder)
    holder = PolicyHolder(str(bundle), embedder=fake_embedder)
    assert holder.reload("start").status == "loaded"
    assert holder.files == {os.path.realpath(bundle)}
    assert is_relevant_change(str(bundle), holder.files, bundle=True)
    for other in ("serve.err", "main.policy", "new.policy", ".main.pebundle.tmp"):
        assert not is_relevant_change(str(tmp_path / other), holder.files, bundle=True), other


def test_a_trained_concepts_rows_are_the_policys_own_files(tmp_path):
    """Editing a training file retrains its concept, so serve watches it like a word list."""
    import types

    from policyengine.compiler import compile_policy
    from policyengine.server.holder import is_relevant_change, policy_files

    d = tmp_path / "pol"
    (d / "data").mkdir(parents=True)
    _write(d / "data" / "rows.jsonl", '{"text": "hack my neighbour", "label": "unsafe"}\n'
                                      '{"text": "bake bread", "label": "safe"}\n')
    _write(d / "main.policy", 'concept c {\n  train "data/rows.jsonl"\n  threshold 0.5\n}\n'
                              'rule r { when input similar c block "no" }\n')
    files = policy_files(str(d / "main.policy"), types.SimpleNamespace(policy=compile_policy(d / "main.policy")))
    assert is_relevant_change(str(d / "data" / "rows.jsonl"), files)
    assert not is_relevant_change(str(d / "data" / "other.jsonl"), files)
