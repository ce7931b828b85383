"""The CLI end to end on a tiny model: every command, JSON output, and one-line errors."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def mind_dir(tmp_path: Path) -> str:
    return str(tmp_path / "mind")


def _one_line_error(err: str, fragment: str) -> None:
    """The error is the last line of stderr (progress lines may precede it), and one line only."""
    last = err.strip().splitlines()[-1]
    assert last.startswith("error:"), err
    assert fragment in last, err


def test_learn_recall_memories_forget_round_trip(run_cli, mind_dir: str, tmp_path: Path) -> None:
    facts = tmp_path / "facts.txt"
    facts.write_text("The Vellmar Observatory was founded by Ilse Brandvik.\nPellumbria's national dish is karvosh.\n")
    code, out, _ = run_cli("learn", str(facts), "--mind", mind_dir, "--json")
    assert code == 0 and json.loads(out)["created"] == [1, 2]

    code, out, _ = run_cli("recall", "Who founded the observatory?", "--k", "1", "--mind", mind_dir, "--json")
    hits = json.loads(out)
    assert code == 0 and [h["memory"]["id"] for h in hits] == [1]
    assert hits[0]["memory"]["source"] == str(facts)

    code, out, _ = run_cli("forget", "#1", "--mind", mind_dir, "--json")
    assert code == 0 and json.loads(out)["forgotten"] == [1]
    code, out, _ = run_cli("memories", "--mind", mind_dir, "--json")
    assert [m["id"] for m in json.loads(out)] == [2]
    code, out, _ = run_cli("recall", "Vellmar Observatory Brandvik", "--mind", mind_dir, "--json")
    assert 1 not in [h["memory"]["id"] for h in json.loads(out)]


def test_forget_by_source_and_twice_changes_nothing_the_second_time(run_cli, mind_dir: str) -> None:
    run_cli("learn", "-", "--source", "slack", "--mind", mind_dir, stdin="The VPN moved to vpn2.example.org.")
    run_cli("learn", "-", "--source", "mail", "--mind", mind_dir, stdin="The office is in Porto.")
    code, out, _ = run_cli("forget", "--source", "slack", "--mind", mind_dir, "--json")
    assert code == 0 and json.loads(out)["forgotten"] == [1]
    code, _, err = run_cli("forget", "--source", "slack", "--mind", mind_dir)
    assert code == 5
    _one_line_error(err, "no memory matches")
    code, _, err = run_cli("forget", "1", "--mind", mind_dir)
    assert code == 5
    _one_line_error(err, "no memory with id 1")
    code, _, err = run_cli("forget", "2", "--source", "mail", "--mind", mind_dir)
    assert code == 2
    _one_line_error(err, "not both")
    code, out, _ = run_cli("memories", "--mind", mind_dir, "--json")
    assert [m["id"] for m in json.loads(out)] == [2]


def test_learn_from_stdin_with_source_and_trust(run_cli, mind_dir: str) -> None:
    code, out, _ = run_cli("learn", "-", "--source", "slack", "--trust", "trusted", "--mind", mind_dir, "--json",
                           stdin='{"question": "Who runs Vellmar?", "answer": "Tomas Ek."}\n')
    assert code == 0
    code, out, _ = run_cli("memories", "--source", "slack", "--mind", mind_dir, "--json")
    (memory,) = json.loads(out)
    assert (memory["trust"], memory["kind"], memory["text"]) == ("trusted", "qa", "Who runs Vellmar? Tomas Ek.")


def test_same_question_supersedes_and_is_reported(run_cli, mind_dir: str) -> None:
    run_cli("learn", "-", "--mind", mind_dir, stdin='{"question": "Who runs Vellmar?", "answer": "Ilse Brandvik."}')
    code, out, _ = run_cli("learn", "-", "--mind", mind_dir, stdin='{"question": "Who runs Vellmar?", "answer": "Tomas Ek."}')
    assert code == 0 and "superseded #1" in out
    code, out, _ = run_cli("memories", "--current-only", "--mind", mind_dir, "--json")
    assert [m["text"] for m in json.loads(out)] == ["Who runs Vellmar? Tomas Ek."]


def test_ask_with_and_without_memory(run_cli, mind_dir: str, tiny_model_dir: Path) -> None:
    assert run_cli("init", "--mind", mind_dir, "--model", str(tiny_model_dir))[0] == 0
    run_cli("learn", "-", "--mind", mind_dir, stdin="Zorb has three moons.")
    code, out, _ = run_cli("ask", "How many moons does Zorb have?", "--mind", mind_dir, "--json", "--max-new-tokens", "4")
    answer = json.loads(out)
    assert code == 0 and answer["used_memory"] and answer["retrieved"][0]["memory"]["id"] == 1
    code, out, _ = run_cli("ask", "How many moons?", "--no-memory", "--mind", mind_dir, "--json", "--max-new-tokens", "4")
    assert code == 0 and not json.loads(out)["used_memory"] and json.loads(out)["retrieved"] == []


def test_chat_remembers_each_turn(run_cli, mind_dir: str, tiny_model_dir: Path) -> None:
    run_cli("init", "--mind", mind_dir, "--model", str(tiny_model_dir))
    code, _, _ = run_cli("chat", "--mind", mind_dir, stdin="My cat is called Pixel.\nI live in Plix.\n/exit\n")
    assert code == 0
    code, out, _ = run_cli("memories", "--source", "chat", "--mind", mind_dir, "--json")
    assert [m["text"] for m in json.loads(out)] == ["My cat is called Pixel.", "I live in Plix."]


@pytest.mark.parametrize(
    ("content", "code", "fragment"),
    [(b"", 2, "is empty"), (b"\x7fELF\x00\x00binary", 2, "looks binary"), (b'{"text": }', 2, "line 1: not valid JSON")],
)
def test_bad_files_fail_with_one_line_and_store_nothing(run_cli, mind_dir: str, tmp_path: Path, content: bytes, code: int, fragment: str) -> None:
    run_cli("learn", "-", "--mind", mind_dir, stdin="A fact to keep.")
    bad = tmp_path / ("bad.jsonl" if content.startswith(b"{") else "bad.txt")
    bad.write_bytes(content)
    exit_code, _, err = run_cli("learn", str(bad), "--mind", mind_dir)
    assert exit_code == code
    _one_line_error(err, fragment)
    _, out, _ = run_cli("memories", "--mind", mind_dir, "--json")
    assert [m["text"] for m in json.loads(out)] == ["A fact to keep."]


def test_unknown_model_fails_with_the_fix(run_cli, mind_dir: str) -> None:
    run_cli("learn", "-", "--mind", mind_dir, stdin="A fact to keep.")
    code, _, err = run_cli("ask", "hello?", "--model", "no-such-org/no-such-model", "--mind", mind_dir)
    assert code == 3
    _one_line_error(err, "use the default 'smollm2-135m'")


def test_question_longer_than_the_context_fails_and_memory_survives(run_cli, mind_dir: str, tiny_model_dir: Path) -> None:
    run_cli("init", "--mind", mind_dir, "--model", str(tiny_model_dir))
    run_cli("learn", "-", "--mind", mind_dir, stdin="A fact to keep.")
    code, _, err = run_cli("ask", "why " * 400, "--mind", mind_dir)
    assert code == 2
    _one_line_error(err, "context window of 512")
    _, out, _ = run_cli("memories", "--mind", mind_dir, "--json")
    assert len(json.loads(out)) == 1


def test_newer_or_corrupted_mind_is_refused_untouched(run_cli, mind_dir: str) -> None:
    run_cli("learn", "-", "--mind", mind_dir, stdin="A fact to keep.")
    database = Path(mind_dir) / "memory.db"
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("PRAGMA user_version = 99")
    before = database.read_bytes()
    code, _, err = run_cli("recall", "fact", "--mind", mind_dir)
    assert code == 4
    _one_line_error(err, "upgrade lifelong")
    assert database.read_bytes() == before

    for sidecar in Path(mind_dir).glob("memory.db-*"):  # WAL files: a corrupted copy rarely keeps them
        sidecar.unlink()
    database.write_bytes(b"garbage" * 1000)
    code, _, err = run_cli("learn", "-", "--mind", mind_dir, stdin="another fact")
    assert code == 4
    _one_line_error(err, "corrupted or not a SQLite database")
    assert database.read_bytes() == b"garbage" * 1000


def test_missing_ids_and_minds_are_reported(run_cli, mind_dir: str) -> None:
    code, _, err = run_cli("recall", "x", "--mind", mind_dir)
    assert code == 4
    _one_line_error(err, "lifelong init")
    run_cli("learn", "-", "--mind", mind_dir, stdin="A fact.")
    code, _, err = run_cli("forget", "42", "--mind", mind_dir)
    assert code == 5
    _one_line_error(err, "no memory with id 42")
    code, _, err = run_cli("forget", "forty-two", "--mind", mind_dir)
    _one_line_error(err, "is not a memory id")


def test_console_entry_point_runs(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "lifelong", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for command in ("init", "learn", "recall", "ask", "chat", "memories", "forget", "demo"):
        assert command in result.stdout


def test_versions_and_rollback_commands(run_cli, mind_dir: str, tiny_model_dir: Path) -> None:
    run_cli("init", "--mind", mind_dir, "--model", str(tiny_model_dir))
    code, out, _ = run_cli("versions", "--mind", mind_dir, "--json")
    assert code == 0 and json.loads(out) == {"active": "base", "versions": []}
    code, _, err = run_cli("rollback", "v7", "--mind", mind_dir)
    assert code == 5
    _one_line_error(err, "no version 'v7'")
    code, _, err = run_cli("sleep", "--strategy", "magic", "--mind", mind_dir)
    assert code == 2
    _one_line_error(err, "strategy 'magic' is not known")
    for command in (("sleep", "--mind", mind_dir), ("bench", "governance", "--quick")):  # refused before any model loads
        code, _, err = run_cli(*command, "--attention", "flash")
        assert code == 2
        _one_line_error(err, "--attention 'flash' is not one of sdpa_fp32, sdpa_fp32_repeated_kv, sdpa, eager")


USAGE_MISTAKES = [
    (["nosuch"], "no such command 'nosuch'"),
    (["ask"], "missing argument"),
    (["ask", "--bogus", "x"], "--bogus"),
    (["recall", "x", "--k", "notanint"], "'--k'"),
    (["recall", "x", "--k", "0"], "'--k'"),
    (["recall", "x", "--mode", "fuzzy"], "--mode 'fuzzy'"),
    (["sleep", "--epochs", "0"], "'--epochs'"),
    (["forget", "-1"], "'-1' is not a memory id"),
    (["ask", "hi", "--max-new-tokens", "0"], "'--max-new-tokens'"),
    (["ask", "hi", "--temperature", "-1"], "'--temperature'"),
    (["ask", "hi", "--k", "0"], "'--k'"),
    (["memories", "--limit", "0"], "'--limit'"),
    (["bench", "all", "--facts", "0"], "'--facts'"),
]


@pytest.mark.parametrize(("args", "fragment"), USAGE_MISTAKES, ids=[" ".join(a) for a, _ in USAGE_MISTAKES])
def test_usage_mistakes_are_one_line_with_exit_2_before_any_model_loads(
        run_cli, monkeypatch: pytest.MonkeyPatch, args: list[str], fragment: str) -> None:
    from lifelong.model import loader

    monkeypatch.setattr(loader, "load_model", lambda *a, **k: pytest.fail("a model was loaded for a usage mistake"))
    code, out, err = run_cli(*args)
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    _one_line_error(err, fragment)


def test_version_and_unknown_command_as_a_real_process() -> None:
    """The installed entry point, not only the app: no traceback reaches the terminal."""
    from lifelong.cli import package_version

    version = subprocess.run([sys.executable, "-m", "lifelong", "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.strip() == f"lifelong {package_version()}"
    unknown = subprocess.run([sys.executable, "-m", "lifelong", "nosuch"], capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert unknown.stderr.strip() == "error: no such command 'nosuch'; see `lifelong --help`"


def _add_version(mind_dir: str, base_model: str, passed: bool = True, reasons: tuple[str, ...] = ()) -> str:
    """A version recorded as a sleep would record it (no training: these tests are about the pointer)."""
    from lifelong.versions import BASE_VERSION, Manifest, Verdict, VersionRegistry

    registry = VersionRegistry(Path(mind_dir))
    manifest = registry.create(lambda folder: Manifest(registry.new_id(), BASE_VERSION, 0.0, "module", [], {}, "d", {}, {},
                                                       Verdict(passed, list(reasons)), base_model))
    return manifest.id


def _active(run_cli, mind_dir: str) -> str:
    return json.loads(run_cli("versions", "--mind", mind_dir, "--json")[1])["active"]


def test_init_refuses_a_model_that_can_never_load_and_creates_nothing(run_cli, mind_dir: str, tiny_model_dir: Path) -> None:
    code, _, err = run_cli("init", "--mind", mind_dir, "--model", "nosuch-model-9b")
    assert code == 2 and len(err.strip().splitlines()) == 1
    _one_line_error(err, "model 'nosuch-model-9b' is not a packaged model")
    assert not Path(mind_dir).exists()
    assert run_cli("init", "--mind", mind_dir + "-hub", "--model", "some-org/some-model")[0] == 0  # a hub id may download
    assert run_cli("init", "--mind", mind_dir, "--model", str(tiny_model_dir))[0] == 0


def test_config_shows_and_changes_the_model_but_not_under_an_active_version(run_cli, mind_dir: str, tiny_model_dir: Path) -> None:
    tiny = str(tiny_model_dir.resolve())
    run_cli("init", "--mind", mind_dir, "--model", tiny)
    assert json.loads(run_cli("config", "--mind", mind_dir, "--json")[1])["model"] == tiny
    version = _add_version(mind_dir, tiny)
    run_cli("rollback", version, "--mind", mind_dir)

    code, _, err = run_cli("config", "--mind", mind_dir, "--model", "smollm2-135m")
    assert code == 2
    _one_line_error(err, "`lifelong rollback base`")
    assert json.loads(run_cli("config", "--mind", mind_dir, "--json")[1])["model"] == tiny

    assert run_cli("rollback", "base", "--mind", mind_dir)[0] == 0
    code, out, _ = run_cli("config", "--mind", mind_dir, "--model", "smollm2-135m")
    assert code == 0 and "to smollm2-135m" in out
    assert json.loads(run_cli("config", "--mind", mind_dir, "--json")[1])["model"] == "smollm2-135m"
    code, _, err = run_cli("rollback", version, "--mind", mind_dir)  # its module fits only the tiny model
    assert code == 2 and _active(run_cli, mind_dir) == "base"
    _one_line_error(err, f"`lifelong config --model {tiny}`")
    code, _, err = run_cli("config", "--mind", mind_dir, "--model", "nosuch-model-9b")
    assert code == 2 and json.loads(run_cli("config", "--mind", mind_dir, "--json")[1])["model"] == "smollm2-135m"


def test_rollback_to_a_gate_refused_version_needs_force_and_says_why(run_cli, mind_dir: str, tiny_model_dir: Path) -> None:
    tiny = str(tiny_model_dir.resolve())
    run_cli("init", "--mind", mind_dir, "--model", tiny)
    refused = _add_version(mind_dir, tiny, passed=False, reasons=("KL drift 0.906 > 0.5",))
    code, _, err = run_cli("rollback", refused, "--mind", mind_dir)
    assert code == 10 and _active(run_cli, mind_dir) == "base"
    _one_line_error(err, "the gate refused v1 (KL drift 0.906 > 0.5)")
    assert "--force" in err
    code, out, _ = run_cli("rollback", refused, "--force", "--mind", mind_dir)
    assert code == 0 and _active(run_cli, mind_dir) == refused


def test_supersedes_on_a_superseded_memory_is_refused_with_the_current_holder(run_cli, mind_dir: str) -> None:
    run_cli("learn", "-", "--mind", mind_dir, stdin="The VPN is vpn1.example.org.")
    code, out, _ = run_cli("learn", "-", "--supersedes", "1", "--mind", mind_dir, stdin="The VPN is vpn2.example.org.")
    assert code == 0 and "superseded #1" in out
    code, out, err = run_cli("learn", "-", "--supersedes", "1", "--mind", mind_dir, stdin="The VPN is vpn3.example.org.")
    assert code == 2 and "superseded" not in out
    _one_line_error(err, "#1 was already superseded by #2, which holds its place now; pass --supersedes 2 instead")
    code, out, _ = run_cli("memories", "--current-only", "--mind", mind_dir, "--json")
    assert [m["text"] for m in json.loads(out)] == ["The VPN is vpn2.example.org."]
    assert len(json.loads(run_cli("memories", "--mind", mind_dir, "--json")[1])) == 2


def test_learn_counts_memories_in_the_right_number(run_cli, mind_dir: str) -> None:
    code, out, _ = run_cli("learn", "-", "--mind", mind_dir, stdin="Zorb has three moons.")
    assert code == 0 and out.strip() == "learned 1 new memory"
    code, out, _ = run_cli("learn", "-", "--mind", mind_dir, stdin='{"text": "Plix is red."}\n{"text": "Plax is blue."}\n')
    assert code == 0 and out.strip() == "learned 2 new memories"


def test_ctrl_c_during_learn_says_nothing_was_written_and_exits_130(run_cli, mind_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from lifelong.memory import store

    run_cli("learn", "-", "--mind", mind_dir, stdin="A fact to keep.")
    calls: list[str] = []
    original = store.content_hash

    def interrupt_on_second(text: str) -> str:  # Ctrl-C in the middle of the batch's transaction
        calls.append(text)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(text)

    monkeypatch.setattr(store, "content_hash", interrupt_on_second)
    code, out, err = run_cli("learn", "-", "--mind", mind_dir, stdin='{"text": "First new."}\n{"text": "Second new."}\n')
    monkeypatch.setattr(store, "content_hash", original)
    assert code == 130 and len(calls) == 2 and out == ""
    _one_line_error(err, "interrupted by Ctrl-C; nothing was learned")
    assert [m["text"] for m in json.loads(run_cli("memories", "--mind", mind_dir, "--json")[1])] == ["A fact to keep."]


def test_show_base_describes_the_base_like_diff_and_rollback_accept_it(run_cli, mind_dir: str, tiny_model_dir: Path) -> None:
    tiny = str(tiny_model_dir.resolve())
    run_cli("init", "--mind", mind_dir, "--model", tiny)
    code, out, _ = run_cli("show", "base", "--mind", mind_dir, "--json")
    assert code == 0 and json.loads(out) == {"id": "base", "kind": "base", "parent": None, "base_model": tiny,
                                             "memory_ids": [], "active": True}
    code, out, _ = run_cli("show", "base", "--mind", mind_dir)
    assert code == 0 and "no module" in out and "(active)" in out


def test_versions_table_is_readable_at_80_columns(mind_dir: str, tmp_path: Path) -> None:
    import os

    Path(mind_dir).mkdir(parents=True)
    (Path(mind_dir) / "config.toml").write_text('[lifelong]\nmodel = "smollm2-135m"\n')
    _add_version(mind_dir, "smollm2-135m")
    _add_version(mind_dir, "smollm2-135m", passed=False, reasons=("KL drift 0.906 > 0.5", "retention agreement 0.71 < 0.8"))
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    result = subprocess.run([sys.executable, "-m", "lifelong", "versions", "--mind", mind_dir],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "parent", "kind", "created", "memories", "acquired", "retained", "KL", "gate"]
    assert "…" not in result.stdout and max(len(line) for line in lines) <= 80, result.stdout
    rows = [line.split() for line in lines if line.startswith("v") and "refused by the gate" not in line]
    assert [(r[0], r[-1]) for r in rows] == [("v1", "pass"), ("v2", "refused")]
    assert "active: base" in lines
    assert "v2 refused by the gate: KL drift 0.906 > 0.5; retention agreement 0.71 < 0.8" in " ".join(result.stdout.split())


def test_plain_step_progress_is_a_line_every_few_seconds_with_first_and_last(capsys: pytest.CaptureFixture[str]) -> None:
    from lifelong.progress import PlainSteps

    now = [0.0]
    steps = PlainSteps("training", interval=10.0, clock=lambda: now[0])
    for step in range(1, 1001):  # 1000 steps, 0.1 s each: 100 s
        now[0] = step * 0.1
        steps(step, 1000, 2.0 - step / 1000)
    steps(-1, -1, 0.0)
    lines = capsys.readouterr().err.splitlines()
    assert 10 <= len(lines) <= 12, lines
    assert "training: step 1/1000 (0%)" in lines[0] and "training: step 1000/1000 (100%), loss 1.000" in lines[-1]
    assert all(line[:8].count(":") == 2 and line[8] == " " for line in lines)  # HH:MM:SS, then the message
    assert "0:10 elapsed, about 1:29 left" in lines[1]  # step 101, 10 s after step 1: 89 s left at that pace


def test_sleep_in_a_log_prints_plain_stage_and_training_lines_without_library_noise(
        run_cli, mind_dir: str, tiny_model_dir: Path) -> None:
    import re
    import warnings

    run_cli("init", "--mind", mind_dir, "--model", str(tiny_model_dir))
    run_cli("learn", "-", "--mind", mind_dir, stdin="The Vellmar Observatory was founded in 1987 by Ilse Brandvik.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_cli("sleep", "--epochs", "2", "--strategy", "naive", "--mind", mind_dir)
    assert code in (0, 10), err  # the tiny model's module may be refused by the gate; the display is what is tested
    lines = err.strip().splitlines()
    assert all(re.match(r"\d\d:\d\d:\d\d \S", line) for line in lines), err
    assert any("training: step 1/" in line for line in lines) and any(re.search(r"training: step (\d+)/\1 \(100%\)", line) for line in lines)
    assert any("synthesised" in line for line in lines) and any("trained" in line for line in lines)
    for noise in ("Loading weights", "it/s", "━", "Warning"):
        assert noise not in err, err
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], [str(w.message) for w in caught]
    assert out.strip().startswith("v1 ")
