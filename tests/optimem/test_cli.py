"""The optimem command: one-line errors with exit 2, nothing created by a bad call, the model loaded only
when a page is read back, the recall table and --json, --version, --lock-timeout, --namespace."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import optimem
from optimem import Memory
from optimem.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _err_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line
    return err


@pytest.mark.parametrize(
    "argv, match",
    [
        (["recall", "{store}", "x"], "no optimem store at"),
        (["stats", "{store}"], "no optimem store at"),
        (["consolidate", "{store}"], "no optimem store at"),
        (["add", "{store}", "--file", "{tmp}/missing.jsonl"], "no file"),
        (["add", "{store}", ""], "turn text is empty"),
        (["add", "{store}", "hi", "--role", "robot"], "unknown role 'robot'"),
        (["add", "{store}"], "nothing to add"),
        (["add", "{store}", "x", "--namespace", "../evil"], "invalid namespace"),
        (["add", "{store}", "x", "--lock-timeout", "-1"], "--lock-timeout: must be a number >= 0"),
        (["consolidate", "{store}", "--now", "-5"], "--now: must be a number >= 0"),
        (["recall", "{store}", "x", "-k", "0"], "-k: must be a positive integer"),
        (["add", "{store}", "x", "--model", "{tmp}/no-such-model"], "does not exist"),
    ],
)
def test_errors_are_one_line_exit_2_and_create_nothing(tmp_path, capsys, argv, match):
    store = tmp_path / "s.optimem"
    argv = [a.format(store=store, tmp=tmp_path) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    assert rc == 2
    assert match in _err_line(capsys)
    assert not store.exists()


def test_bad_jsonl_line_is_named(tmp_path, capsys):
    conv = tmp_path / "c.jsonl"
    conv.write_text('{"role": "user", "content": "ok"}\n{"role": "user", "content": "x", "tool_call_id": 1}\n')
    assert main(["add", str(tmp_path / "s"), "--file", str(conv)]) == 2
    assert f"{conv}:2:" in _err_line(capsys)
    assert not (tmp_path / "s").exists()


def test_missing_namespace_is_an_error_for_read_commands(tmp_path, capsys):
    store = str(tmp_path / "s")
    assert main(["add", store, "hello"]) == 0
    capsys.readouterr()
    for argv in (["recall", store, "hello"], ["stats", store], ["consolidate", store]):
        assert main([*argv, "--namespace", "other"]) == 2
        assert "namespace 'other' does not exist" in _err_line(capsys)
    assert main(["stats", store, "--namespace", "default"]) == 0


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"optimem {optimem.__version__}"


def test_lock_timeout_is_an_option_and_named_in_the_error(tmp_path, capsys):
    store = tmp_path / "s"
    with Memory(store, model=None):
        assert main(["add", str(store), "x", "--lock-timeout", "0"]) == 2
        err = _err_line(capsys)
        assert "open for writing" in err and "--lock-timeout SECONDS" in err


def test_recall_prints_a_table_or_json(tmp_path, capsys):
    store = str(tmp_path / "s")
    assert main(["add", store, "My locker code is 4417.", "The weather is mild today."]) == 0
    capsys.readouterr()
    assert main(["recall", store, "locker code", "-k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "role", "tier", "score", "conf", "age", "text"]
    assert len(lines) == 2 and lines[1].split()[:3] == ["1", "user", "verbatim"]
    assert lines[1].endswith("My locker code is 4417.")
    assert main(["recall", store, "locker code", "-k", "2", "--json"]) == 0
    hits = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [h["turn_id"] for h in hits] == [1, 2] and hits[0]["text"] == "My locker code is 4417."


def test_only_reading_a_page_loads_the_model(tmp_path, tiny_model_dir):
    """add (with page-outs written --no-verify), stats, consolidate and recall --no-decode never import torch; a
    recall that reads an archived page does (and so does a verified page-out, which reads every page back)."""
    code = textwrap.dedent(f"""
        import contextlib, io, sys
        from optimem.cli import main
        store, model = {str(tmp_path / "s")!r}, {str(tiny_model_dir)!r}
        turns = [f"turn {{i}}: " + "the archive keeps page images of old turns " * 20 for i in range(6)]
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["add", store, *turns, "--model", model, "--no-verify"]) == 0
            assert main(["stats", store, "--model", model]) == 0
            assert main(["consolidate", store, "--model", model]) == 0
            assert main(["recall", store, "turn 0", "--no-decode", "--json", "--model", model]) == 0
        print("torch" in sys.modules)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(["recall", store, "turn 0", "--json", "-k", "1", "--model", model]) == 0
        print(out.getvalue().count('"tier": "base"'), "torch" in sys.modules)
    """)
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "1", "True"]
