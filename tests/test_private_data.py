"""Private data is found before anything is stored and handled by the mind's policy: by default
secrets and card numbers never reach the disk, e-mail addresses are recalled but never trained
on, and a refused kind stores nothing of its batch."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from lifelong.consolidate import TRAINING_DATA, SleepConfig
from lifelong.errors import InputError, MindError
from lifelong.learn.trainer import TrainConfig
from lifelong.memory.private_data import PrivacyPolicy, find_private_data
from lifelong.memory.records import NewMemory
from lifelong.mind import Mind
from lifelong.mind_config import CONFIG_FILE

CARD = "4111 1111 1111 1111"
EMAIL = "petra.lindqvist@korvath-engineering.org"
FACT = "The Korvath Bridge over the river Elsin was designed by the engineer Petra Lindqvist in 1964."


CASES = [
    (f"Petra's e-mail is {EMAIL}.", "email", EMAIL),
    ("Call the site office on +44 20 7946 0958 after six.", "phone", "+44 20 7946 0958"),
    ("Text Runa on +1 499 245 6007 tonight.", "phone", "+1 499 245 6007"),  # an area code libphonenumber does not know
    (f"The company card is {CARD}, expiring next May.", "payment_card", CARD),
    ("Pay the invoice to IBAN DE89 3704 0044 0532 0130 00 by Friday.", "iban", "DE89 3704 0044 0532 0130 00"),
    ("Her social security number is 536-22-8726.", "national_id", "536-22-8726"),
    ("The deploy key is AKIAIOSFODNN7EXAMPLE, keep it safe.", "secret", "AKIAIOSFODNN7EXAMPLE"),
    ("Use the token ghp_abcdefghijklmnopqrstuvwxyz0123456789 for the mirror.", "secret",
     "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    ("The wifi password is Elsin-1964-bridge, ask before sharing.", "secret", "Elsin-1964-bridge"),
]


@pytest.mark.parametrize("text, kind, value", CASES)
def test_each_kind_of_private_data_is_found_with_its_span(text: str, kind: str, value: str) -> None:
    [finding] = find_private_data(text)
    assert (finding.kind, text[finding.start:finding.end]) == (kind, value)


def test_a_fresh_process_finds_the_same_without_importing_torch_and_can_still_import_it() -> None:
    # presidio is imported with its optional NLP engines' torch and transformers hidden (learn
    # starts seconds faster); detection must not change, and torch must stay importable after
    import subprocess
    import sys

    code = ("import json, sys; from lifelong.memory.private_data import find_private_data; "
            f"found = [[(f.kind, t[f.start:f.end]) for f in find_private_data(t)] for t in {[t for t, _, _ in CASES]!r}]; "
            "torch_before = 'torch' in sys.modules; import torch, transformers; "
            "print(json.dumps({'found': found, 'torch_before': torch_before, 'torch': torch.__version__}))")
    result = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert result["found"] == [[[kind, value]] for _, kind, value in CASES]
    assert result["torch_before"] is False and result["torch"]


def test_text_no_pattern_recognizer_can_match_skips_presidio_but_not_the_secret_scanner() -> None:
    import subprocess
    import sys

    code = ("import json, sys; from lifelong.memory.private_data import find_private_data; "
            "plain = find_private_data('The mill by the river opens at dawn, says Petra Lindqvist.'); "
            "key = find_private_data('-----BEGIN RSA PRIVATE KEY-----'); "
            "print(json.dumps({'plain': [f.kind for f in plain], 'key': [f.kind for f in key], 'presidio': 'presidio_analyzer' in sys.modules}))")
    result = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert result == {"plain": ["person"], "key": ["secret"], "presidio": False}  # names need no presidio


def test_ordinary_facts_with_years_and_numbers_hold_no_private_data_but_names() -> None:
    for text in [FACT, "The plague returned to Europe between 1644–54 and again in 1665.",
                 "Jaime Vasquez was born on the 25th of February in the year 1958 in Santiago, Chile.",
                 "Room 4.12 seats 30 people; the lift is out of order until 3 June.",
                 "He led the orchestra (1963–1989) and the choir 1983/1984."]:
        assert [f.kind for f in find_private_data(text)] in ([], ["person"])


@pytest.mark.parametrize("text, names", [
    ("The acclaimed romance author from Kingston, Jamaica is Jordan Sinclair.", ["Jordan Sinclair"]),  # census lists
    ("Then George R.R. Martin signed it for Maria Estela Gutierrez.", ["George R.R. Martin", "Maria Estela Gutierrez"]),
    ("Dr. Okonkwo will call back; the author's full name is Anara Yusifova.", ["Okonkwo", "Anara Yusifova"]),
    ("Hi, this is Priya Raman from accounts.", ["Priya Raman"]),  # introduced, names outside the census lists
    ("We met at Washington Square, then walked to the University of Chicago in June.", []),  # places, not people
    ("I'm Canadian and I drive to the Lake Tahoe office in a Ford Motor van.", []),
])
def test_person_names_are_found_with_their_spans_and_places_are_not(text: str, names: list[str]) -> None:
    assert [text[f.start:f.end] for f in find_private_data(text) if f.kind == "person"] == names


def test_by_default_names_are_reported_and_trained_on_and_a_policy_keeps_them_out() -> None:
    text = "Jordan Sinclair moved the launch to Thursday."
    default = PrivacyPolicy().screen(text)
    assert (default.text, default.allowed, default.no_train) == (text, ("person",), ())
    kept_out = PrivacyPolicy.from_mapping({"person": "no-train"}).screen(text)
    assert kept_out.no_train == ("person",) and kept_out.allowed == ()
    assert PrivacyPolicy.from_mapping({"person": "redact"}).screen(text).text == "[PERSON] moved the launch to Thursday."


def test_by_default_a_card_number_never_reaches_the_disk_and_an_email_is_never_trained_on(mind: Mind, tiny_lm) -> None:
    report = mind.learn_records([NewMemory(f"The company card is {CARD}."), NewMemory(f"Petra's e-mail is {EMAIL}."),
                                 NewMemory(FACT)])
    card, email, fact = (mind.store.get(i) for i in report.created)
    assert CARD not in card.text and "[PAYMENT_CARD]" in card.text and card.no_train is None
    assert email.text.endswith(f"{EMAIL}.") and email.no_train == "email" and not email.trainable
    assert fact.no_train is None
    assert report.to_dict()["private_data"] == [
        {"id": card.id, "redacted": ["payment_card"], "kept_out_of_training": [], "allowed": []},
        {"id": email.id, "redacted": [], "kept_out_of_training": ["email"], "allowed": []},
        {"id": fact.id, "redacted": [], "kept_out_of_training": [], "allowed": ["person"]}]  # "the engineer Petra Lindqvist"
    mind.store.close()
    digits = CARD.encode()
    for file in mind.path.iterdir():  # the database, its WAL and the audit log
        if file.is_file():
            assert digits not in file.read_bytes(), file.name
    with Mind.open(mind.path, embedder=mind.embedder, language_model=tiny_lm) as reopened:
        assert [h.memory.id for h in reopened.recall("Petra e-mail address", 1)] == [email.id]  # still recalled


def test_sleep_trains_on_the_fact_and_never_on_the_memory_kept_out(mind: Mind) -> None:
    mind.learn(f"Petra's e-mail is {EMAIL}.")
    mind.learn(FACT)
    messages: list[str] = []
    result = mind.sleep(SleepConfig(train=TrainConfig(rank=4, epochs=1, bf16=False), distill=False), report=messages.append)
    assert any("kept 1 memory with private data out of training" in m for m in messages)
    training = (mind.versions.path(result.manifest.id) / TRAINING_DATA).read_text()
    assert "Korvath" in training and EMAIL not in training and "e-mail" not in training
    assert result.manifest.memory_ids == [2]


def test_a_refused_kind_stores_nothing_of_its_batch_and_names_the_fix(mind: Mind) -> None:
    (mind.path / CONFIG_FILE).write_text((mind.path / CONFIG_FILE).read_text() + '\n[privacy]\nemail = "refuse"\n')
    reopened = Mind.open(mind.path, embedder=mind.embedder, language_model=mind.language_model)
    with pytest.raises(InputError, match=r"item 2 holds a e-mail address.*\[privacy\] email = \"redact\""):
        reopened.learn_records([NewMemory(FACT), NewMemory(f"Petra's e-mail is {EMAIL}.")])
    assert reopened.store.count() == 0


def test_a_policy_can_redact_what_the_default_keeps_and_config_errors_name_the_fix(mind: Mind) -> None:
    assert PrivacyPolicy.from_mapping({"email": "redact"}).screen(f"Write to {EMAIL}.").text == "Write to [EMAIL]."
    assert PrivacyPolicy.from_mapping({"email": "allow"}).screen(f"Write to {EMAIL}.").no_train == ()
    (mind.path / CONFIG_FILE).write_text((mind.path / CONFIG_FILE).read_text() + '\n[privacy]\nemail = "hide"\n')
    with pytest.raises(MindError, match=r"'hide' is not an action; choose from: redact, no-train, refuse, allow"):
        Mind.open(mind.path, embedder=mind.embedder, language_model=mind.language_model)


def test_a_store_from_the_previous_schema_is_upgraded_in_place_with_its_memories(mind: Mind, tiny_lm) -> None:
    first = mind.learn(FACT).created[0]
    mind.store.close()
    db = sqlite3.connect(mind.path / "memory.db")
    db.execute("DROP INDEX memories_pending")  # back to what lifelong with schema 1 wrote
    db.execute("ALTER TABLE memories DROP COLUMN no_train")
    db.execute("ALTER TABLE memories DROP COLUMN quarantine")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    reopened = Mind.open(mind.path, embedder=mind.embedder, language_model=tiny_lm)
    assert reopened.store.get(first).text == FACT and reopened.store.get(first).no_train is None
    assert reopened.learn(f"Petra's e-mail is {EMAIL}.").private[0]["kept_out_of_training"] == ["email"]


def test_learn_reports_what_it_found_without_printing_it(run_cli, tmp_path: Path, tiny_model_dir: Path) -> None:
    mind = str(tmp_path / "m")
    assert run_cli("init", "--mind", mind, "--model", str(tiny_model_dir))[0] == 0
    code, out, err = run_cli("learn", "-", "--mind", mind, stdin=f"The deploy key is AKIAIOSFODNN7EXAMPLE and mail {EMAIL}.\n")
    assert code == 0, err
    assert ("#1: private data: redacted secret (API key, token or password); kept e-mail address, never trained on"
            in " ".join(out.split()))
    assert "AKIA" not in out and EMAIL not in out
    code, out, _ = run_cli("memories", "--mind", mind, "--json")
    [memory] = json.loads(out)
    assert "AKIA" not in memory["text"] and memory["no_train"] == "email"
    code, out, err = run_cli("learn", "-", "--mind", mind, stdin="Jordan Sinclair wrote the launch plan.\nAsk Priya Raman.\n")
    assert code == 0, err
    assert ("person's name found in 2 memories: stored and trained on as written (set [privacy] person = \"no-train\""
            in " ".join(out.split()))
