"""The audit log is a hash chain: every removed, inserted or edited line is caught by --verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lifelong.versions.audit import AuditLog


def _log(tmp_path: Path, events: int = 5) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(events):
        log.append("learn", version="base", created=i)
    return log


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines()


def _rewrite(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("".join(line + "\n" for line in lines))


def test_an_untouched_log_verifies_and_records_who_did_what(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFELONG_ACTOR", "tenant-7")
    log = _log(tmp_path)
    assert log.verify().intact and log.verify().lines == 5
    assert [r["created"] for r in log.records()] == [0, 1, 2, 3, 4] and log.records()[0]["actor"] == "tenant-7"


@pytest.mark.parametrize("tamper", ["delete first", "delete middle", "delete last", "edit middle", "edit last",
                                    "insert", "swap", "truncate all but one"])
def test_every_removed_or_edited_line_is_caught(tmp_path: Path, tamper: str) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    edited = json.loads(lines[2])
    edited["created"] = 99
    last = json.loads(lines[-1])
    last["event"] = "forget"
    changed = {
        "delete first": lines[1:], "delete middle": lines[:2] + lines[3:], "delete last": lines[:-1],
        "edit middle": lines[:2] + [json.dumps(edited, sort_keys=True)] + lines[3:],
        "edit last": lines[:-1] + [json.dumps(last, sort_keys=True)],
        "insert": lines[:3] + [lines[1]] + lines[3:], "swap": [lines[1], lines[0], *lines[2:]], "truncate all but one": lines[:1],
    }[tamper]
    _rewrite(log, changed)
    assert not log.verify().intact


def test_a_log_from_before_the_chain_still_verifies_and_chains_on(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text(json.dumps({"time": 1.0, "event": "promoted", "version": "v1"}) + "\n")
    log = AuditLog(path)
    log.append("learn", version="v1")
    result = log.verify()
    assert result.intact and result.legacy == 1 and result.lines == 2
    _rewrite(log, [json.dumps({"time": 2.0, "event": "promoted", "version": "v9"}), _lines(log)[1]])
    assert not log.verify().intact  # the first chained line hashes the older one


def test_the_cli_shows_the_log_and_verify_exits_7_on_a_broken_chain(run_cli, tmp_path: Path) -> None:
    mind_dir = str(tmp_path / "m")
    run_cli("learn", "-", "--mind", mind_dir, stdin="The VPN moved to vpn2.example.org.")
    run_cli("learn", "-", "--mind", mind_dir, stdin="The office is in Porto.")
    run_cli("forget", "1", "--mind", mind_dir)
    code, out, _ = run_cli("audit", "--mind", mind_dir, "--json")
    assert code == 0 and [r["event"] for r in json.loads(out)] == ["learn", "learn", "forget"]
    assert run_cli("audit", "--verify", "--mind", mind_dir)[0] == 0
    log = AuditLog(Path(mind_dir) / "audit.jsonl")
    _rewrite(log, [_lines(log)[0], _lines(log)[2]])  # the second learn erased
    code, _, err = run_cli("audit", "--verify", "--mind", mind_dir)
    assert code == 7 and "line 2 does not follow line 1" in err
