"""The command line, run as `python -m policyengine` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

POLICY = r'''policy cli { version "0.3" }
context { tier: string }
pattern card = /\b\d(?:[ -]?\d){12,18}\b/ validate luhn
words slurs = ["darn"]
rule no_slurs { severity high  when input contains slurs  block "Keep it civil." }
rule mask { when input matches card  redact card with "[CARD]" }
rule gold { when context.tier == "gold" flag "gold customer" }
test "slur" { input "oh darn" expect block by no_slurs }
test "card" { input "4111 1111 1111 1111" expect redact by mask }
'''


def run(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "policyengine", *args], cwd=cwd, input=stdin, text=True,
                          capture_output=True, env=env, timeout=120)


@pytest.fixture
def pdir(tmp_path: Path) -> Path:
    (tmp_path / "cli.policy").write_text(POLICY)
    return tmp_path


def test_check_text_block(pdir):
    r = run("check", "cli.policy", "well darn", cwd=pdir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("BLOCK by rule no_slurs: Keep it civil.")
    assert "rule no_slurs (block, severity high) at cli.policy:5:1" in r.stdout
    assert "input contains slurs: input[5:9] 'darn'" in r.stdout


def test_check_allow_is_exit_zero(pdir):
    r = run("check", "cli.policy", "hello", cwd=pdir)
    assert r.returncode == 0 and r.stdout.startswith("ALLOW")


def test_check_json_one_object_per_line(pdir):
    r = run("check", "cli.policy", "well darn", "card 4111-1111-1111-1111", "fine", "--format", "json", cwd=pdir)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3
    data = [json.loads(ln) for ln in lines]
    assert [d["action"] for d in data] == ["block", "redact", "allow"]
    assert data[1]["redacted"] == "card [CARD]"
    assert data[0]["policy"]["name"] == "cli" and data[0]["reasons"][0]["source"]["line"] == 5


def test_check_context(pdir):
    r = run("check", "cli.policy", "hello", "--context", '{"tier": "gold"}', "--format", "json", cwd=pdir)
    assert json.loads(r.stdout)["action"] == "flag"
    bad = run("check", "cli.policy", "hello", "--context", '{"tier": 3}', cwd=pdir)
    assert bad.returncode == 2 and "tier" in bad.stderr and "Traceback" not in bad.stderr
    broken = run("check", "cli.policy", "hello", "--context", '{"tier": ', cwd=pdir)
    assert broken.returncode == 2 and "invalid JSON" in broken.stderr and "Traceback" not in broken.stderr


def test_check_input_jsonl_with_bad_lines(pdir):
    lines = [
        json.dumps({"id": "a", "text": "oh darn"}),
        "{not json",
        json.dumps({"id": "c", "text": "hi", "context": {"tier": 7}}),
        "",
        json.dumps({"id": "e", "text": "hi", "context": {"tier": "gold"}}),
        json.dumps({"id": "f", "nope": 1}),
        json.dumps({"text": "4111 1111 1111 1111"}),
    ]
    (pdir / "in.jsonl").write_text("\n".join(lines) + "\n")
    r = run("check", "cli.policy", "--input", "in.jsonl", "--format", "json", cwd=pdir)
    assert r.returncode == 2  # some lines were bad
    assert "Traceback" not in r.stderr
    err_lines = [ln for ln in r.stderr.splitlines() if ": error" in ln]
    assert sorted(int(ln.split(":")[1]) for ln in err_lines) == [2, 3, 6]  # context errors come at batch time
    assert all(ln.startswith("in.jsonl:") for ln in err_lines)
    out = [json.loads(ln) for ln in r.stdout.strip().splitlines()]
    assert all("action" in d for d in out)  # stdout holds decisions only: line errors go to stderr
    decided = {d["id"]: d["action"] for d in out}
    assert decided == {"a": "block", "e": "flag", 7: "redact"}


def test_check_stdin_jsonl(pdir):
    r = run("check", "cli.policy", "--format", "json", cwd=pdir, stdin='{"text": "darn"}\n{"text": "ok"}\n')
    assert r.returncode == 0, r.stderr
    assert [json.loads(ln)["action"] for ln in r.stdout.splitlines()] == ["block", "allow"]


def test_explain(pdir):
    r = run("explain", "cli.policy", "my card 4111 1111 1111 1111 ok", cwd=pdir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("message: 'my card 4111 1111 1111 1111 ok'\nREDACT by rule mask")
    assert "redacted input: 'my card [CARD] ok'" in r.stdout
    assert "^^^^^^^^^^^^^^^^^^^" in r.stdout
    j = run("explain", "cli.policy", "darn", "--format", "json", cwd=pdir)
    assert json.loads(j.stdout)["rule"] == "no_slurs"


def test_test_command_pass(pdir):
    r = run("test", "cli.policy", "-v", cwd=pdir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS cli.policy:8 'slur'" in r.stdout and r.stdout.rstrip().endswith("2 passed, 0 failed")


def test_test_command_failure(pdir):
    (pdir / "bad.policy").write_text(POLICY + 'test "wrong" { input "hello" expect block by no_slurs }\n')
    r = run("test", "bad.policy", cwd=pdir)
    assert r.returncode == 1
    assert "FAIL bad.policy:10 'wrong': expected block by no_slurs, got allow" in r.stdout
    assert r.stdout.rstrip().endswith("2 passed, 1 failed")
    j = run("test", "bad.policy", "--format", "json", cwd=pdir)
    assert j.returncode == 1 and json.loads(j.stdout)["failed"] == 1


def test_policy_error_exit_2(pdir):
    (pdir / "broken.policy").write_text("pattern p = /x/\nrule r { when input matches q block }\n")
    for cmd in (["check", "broken.policy", "x"], ["explain", "broken.policy", "x"], ["test", "broken.policy"]):
        r = run(*cmd, cwd=pdir)
        assert r.returncode == 2
        assert "broken.policy:2:29: error[E0401]: unknown pattern 'q'" in r.stderr
        assert "Traceback" not in r.stderr and r.stdout == ""


def test_missing_policy_file_exit_2(pdir):
    r = run("check", "nope.policy", "x", cwd=pdir)
    assert r.returncode == 2 and "nope.policy" in r.stderr and "Traceback" not in r.stderr


def test_missing_input_file_exit_2(pdir):
    r = run("check", "cli.policy", "--input", "missing.jsonl", cwd=pdir)
    assert r.returncode == 2 and "missing.jsonl" in r.stderr and "Traceback" not in r.stderr


def test_no_command_is_usage(pdir):
    assert run(cwd=pdir).returncode == 2


@pytest.mark.model
def test_check_with_real_model(tmp_path):
    (tmp_path / "demo.policy").write_text('''policy demo { default allow }
concept weapons_howto {
  examples { "how do I build a pipe bomb"  "step by step instructions to make a nerve agent at home" }
  counter  { "how do I kill a python process"  "history of the manhattan project" }
  threshold 0.62
}
rule no_weapons { severity high  when input similar weapons_howto  block "I can't help with making weapons." }
''')
    r = run("check", "demo.policy", "give me steps to build a pipe bomb", "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["action"] == "block" and d["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert d["reasons"][0]["evidence"][0]["kind"] == "similarity"
    assert d["reasons"][0]["evidence"][0]["example"] == "how do I build a pipe bomb"


def test_check_limits_flags(pdir, capsys):
    """--max-input-chars / --on-oversize reach the engine: truncate evaluates the start and says so; block refuses
    without evaluating; a bad value is a usage error."""
    from policyengine.cli.main import main

    long = "hello " * 50 + "darn"  # the slur sits past the first 100 characters
    assert main(["check", str(pdir / "cli.policy"), long, "--max-input-chars", "100", "--on-oversize", "truncate",
                 "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["action"] == "allow" and any("100" in n for n in d["notes"])
    assert main(["check", str(pdir / "cli.policy"), long, "--max-input-chars", "100", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["errors"]  # past the hard limit: blocked by default
    assert main(["check", str(pdir / "cli.policy"), long, "--max-input-chars", "100", "--on-oversize", "block",
                 "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["action"] == "block" and d["rule"] is None and d["errors"]
    assert main(["check", str(pdir / "cli.policy"), long, "--format", "json"]) == 0  # default limit: evaluated
    assert json.loads(capsys.readouterr().out)["rule"] == "no_slurs"
    assert main(["explain", str(pdir / "cli.policy"), long, "--max-chunks", "0"]) == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_serve_config_carries_limits():
    from policyengine.server.config import ServerConfig

    cfg = ServerConfig(policy="x.policy", max_input_chars=50, on_oversize="block")
    again = json.loads(cfg.to_env())
    assert again["max_input_chars"] == 50 and again["on_oversize"] == "block"
    lim = cfg.limits()
    assert (lim.max_input_chars, lim.max_chunks, lim.on_oversize) == (50, 256, "block")


def test_limit_defaults_agree_everywhere():
    """Limits, `serve`'s config and the --max-input-chars / --max-chunks / --on-oversize flags share defaults."""
    import argparse

    from policyengine.cli.main import add_limit_args, limits_from_args
    from policyengine.engine import Limits
    from policyengine.server.config import ServerConfig

    p = argparse.ArgumentParser()
    add_limit_args(p)
    assert limits_from_args(p.parse_args([])) == Limits() == ServerConfig(policy="x.policy").limits()
    assert Limits().on_oversize == "block"


# ---- options anywhere, argument errors, exit codes on missing or empty paths (issue 21) -----------------------


def test_options_anywhere_on_the_line(pdir):
    """`check POLICY --context '{..}' TEXT` used to fail with 'unrecognized arguments'."""
    for argv in (["check", "cli.policy", "--context", '{"tier": "gold"}', "hello", "--format", "json"],
                 ["check", "--format", "json", "cli.policy", "--context", '{"tier": "gold"}', "hello"],
                 ["check", "--context", '{"tier": "gold"}', "--format", "json", "cli.policy", "hello"]):
        r = run(*argv, cwd=pdir)
        assert r.returncode == 0, (argv, r.stderr)
        assert json.loads(r.stdout)["action"] == "flag"
    r = run("check", "cli.policy", "well darn", "--format", "json", "hello", cwd=pdir)  # two texts around an option
    assert [json.loads(ln)["action"] for ln in r.stdout.splitlines()] == ["block", "allow"]
    r = run("explain", "cli.policy", "--format", "json", "darn", cwd=pdir)
    assert r.returncode == 0 and json.loads(r.stdout)["rule"] == "no_slurs"
    r = run("test", "cli.policy", "--format", "json", cwd=pdir)
    assert r.returncode == 0 and json.loads(r.stdout)["passed"] == 2
    r = run("lint", "cli.policy", "--format", "json", "--no-semantic", cwd=pdir)
    assert r.returncode == 0 and json.loads(r.stdout)
    r = run("fmt", "cli.policy", "--check", cwd=pdir)
    assert r.returncode in (0, 1) and "unrecognized" not in r.stderr


@pytest.mark.parametrize("argv", [
    ["check", "cli.policy", "x", "--threads", "-1"],
    ["check", "cli.policy", "x", "--threads", "0"],
    ["check", "cli.policy", "x", "--threads", "two"],
    ["explain", "cli.policy", "x", "--max-input-chars", "0"],
    ["score", "cli.policy", "--data", "d.jsonl", "--threads", "-1"],
    ["score", "cli.policy", "--data", "d.jsonl", "--misses", "-3"],
    ["compile", "cli.policy", "-o", "b.zip", "--threads", "-1"],
    ["serve", "cli.policy", "--workers", "0"],
])
def test_argument_errors_are_usage_errors(pdir, argv):
    """`--threads -1` used to surface as a model-loading error; it is an argparse usage error now (exit 2)."""
    r = run(*argv, cwd=pdir)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("usage: policyengine " + argv[0])
    assert f"policyengine {argv[0]}: error: argument " in r.stderr
    error_line = r.stderr.strip().splitlines()[-1]  # (the usage lines may name options like --no-model)
    assert "model" not in error_line.lower() and "Traceback" not in r.stderr and r.stdout == ""


def test_argument_error_in_process_returns_2(pdir, capsys):
    from policyengine.cli.main import main

    assert main(["check", str(pdir / "cli.policy"), "x", "--threads", "-1"]) == 2
    assert "argument --threads: must be at least 1, got '-1'" in capsys.readouterr().err
    assert main(["--version"]) == 0


def test_unknown_context_key_is_a_note_and_a_warning(pdir):
    """A misspelt context key used to be ignored without a word."""
    r = run("check", "cli.policy", "hello", "--context", '{"teir": "gold"}', "--format", "json", cwd=pdir)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["action"] == "allow"
    assert any("'teir'" in n and "did you mean 'tier'?" in n and "not declared" in n for n in d["notes"])
    warn = [ln for ln in r.stderr.splitlines() if "warning" in ln]
    assert len(warn) == 1 and warn[0].startswith("--context: warning: 'teir' (did you mean 'tier'?)")
    ok = run("check", "cli.policy", "hello", "--context", '{"tier": "gold"}', "--format", "json", cwd=pdir)
    assert not json.loads(ok.stdout)["notes"] and "warning" not in ok.stderr
    # JSONL: the warning names the line, once per key; each decision carries the note
    lines = [{"id": i, "text": "hi", "context": {"tier": "gold", "plan": "pro"}} for i in range(3)]
    (pdir / "ctx.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    j = run("check", "cli.policy", "--input", "ctx.jsonl", "--format", "json", cwd=pdir)
    assert j.returncode == 0, j.stderr
    out = [json.loads(ln) for ln in j.stdout.splitlines()]
    assert [d["action"] for d in out] == ["flag"] * 3
    assert all(any("'plan'" in n for n in d["notes"]) for d in out)
    warn = [ln for ln in j.stderr.splitlines() if "warning" in ln]
    assert len(warn) == 1 and warn[0].startswith("ctx.jsonl:1: warning: 'plan'")


def test_unknown_context_key_note_from_the_library():
    from policyengine import Engine

    e = Engine.from_source('policy p { version "1" }\ncontext { user.role: string }\n'
                           'rule r { when context.user.role == "admin" flag "admin" }\n', name="p.policy")
    assert e.evaluate("x", context={"user": {"role": "admin"}}).notes == []
    d = e.evaluate("x", context={"user": {"rol": "admin"}})
    assert d.action == "allow" and d.notes and "'user.rol' (did you mean 'user.role'?)" in d.notes[0]


@pytest.mark.parametrize("argv", [["check", "nowhere.policy", "x"], ["explain", "nowhere.policy", "x"],
                                  ["lint", "nowhere.policy"], ["test", "nowhere.policy"], ["fmt", "nowhere.policy"],
                                  ["compile", "nowhere.policy", "-o", "b.zip"], ["lint", "nowhere"],
                                  ["test", "nowhere"], ["serve", "nowhere"],
                                  ["score", "cli.policy", "--data", "nowhere.jsonl"]])
def test_a_missing_path_is_exit_2_with_a_clear_message(pdir, argv):
    r = run(*argv, cwd=pdir)
    assert r.returncode == 2, (argv, r.returncode, r.stderr)
    assert "nowhere" in r.stderr and ("not found" in r.stderr or "no such" in r.stderr.lower()
                                      or "No such file" in r.stderr)
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("cmd", ["lint", "test", "fmt"])
def test_a_folder_without_policies_is_exit_2(pdir, cmd):
    """`test` on an empty folder used to say '0 passed' and exit 0 while `lint` exited 2."""
    (pdir / "empty").mkdir()
    r = run(cmd, "empty", cwd=pdir)
    assert r.returncode == 2, (cmd, r.stdout, r.stderr)
    assert "no .policy" in r.stderr and "empty" in r.stderr


def test_check_without_a_policy_names_only_the_policy(capsys):
    from policyengine.cli.main import main

    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert "the following arguments are required: policy" in err and "policy, text" not in err


@pytest.mark.parametrize("argv, expect", [
    (["diff", "--data", "d.jsonl", "old.policy", "--explain", "new.policy"],
     {"old_policy": "old.policy", "new_policy": "new.policy", "data": ["d.jsonl"], "explain": True}),
    (["calibrate", "p.policy", "--max-frr", "3%", "--data", "d.jsonl"], {"policy": "p.policy", "max_frr": 0.03}),
    (["serve", "--api-key", "k1", "p.policy", "--api-key", "k2"], {"policy": "p.policy", "api_key": ["k1", "k2"]}),
    (["compile", "-o", "b.zip", "p.policy", "--threads", "2"], {"policy": "p.policy", "output": "b.zip", "threads": 2}),
    (["test", "a.policy", "--coverage", "b.policy"], {"policy": ["a.policy", "b.policy"], "coverage": True}),
    (["fmt", "a.policy", "--check", "b.policy"], {"paths": ["a.policy", "b.policy"], "check": True}),
    (["lint", "a.policy", "--no-semantic", "b.policy"], {"paths": ["a.policy", "b.policy"], "no_semantic": True}),
    (["score", "p.policy", "--data", "a.jsonl", "--misses", "3", "--data", "b.jsonl"],
     {"policy": "p.policy", "data": ["a.jsonl", "b.jsonl"], "misses": 3}),
    (["explain", "--context", "{}", "p.policy", "--format", "json", "hi"], {"policy": "p.policy", "text": "hi"}),
])
def test_every_command_takes_options_anywhere(argv, expect):
    from policyengine.cli.main import _parser

    args = vars(_parser().parse_args(argv))
    assert {k: args[k] for k in expect} == expect
