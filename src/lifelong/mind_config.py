"""The mind directory's config.toml: which model and embedder this mind was made with, and its
policies.

Untrusted memories are kept out of answers and training unless the policy lets them in
([answers] / [training] min_trust = "untrusted"): the write-time screens catch about half of
the false statements and none of the instructions phrased in ways their patterns do not know
(README, Governance), and a 135M model copies whatever note is in its prompt."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from lifelong.errors import InputError, MindError
from lifelong.memory.private_data import PrivacyPolicy
from lifelong.memory.records import TRUST_LEVELS

CONFIG_FORMAT = 1
CONFIG_FILE = "config.toml"
# [training] modules: one module per topic among a sleep's new memories (the default where the
# sleep can), so that a forget rebuilds only its topic's module (learn/topics.py), or one per sleep.
MODULES_PER_SLEEP = "per-sleep"
MODULES_PER_TOPIC = "per-topic"


@dataclass(frozen=True)
class MindConfig:
    model: str
    embedder: str = "all-MiniLM-L6-v2"
    format: int = CONFIG_FORMAT
    teacher_url: str | None = None  # OpenAI-compatible endpoint used by sleep; off when unset
    teacher_model: str | None = None
    privacy: dict[str, str] = field(default_factory=dict)  # [privacy] kind = action, where it differs from the default
    answer_trust: str = "user"  # [answers] min_trust: the least trusted memory an answer may use (untrusted notes: opt in)
    train_trust: str = "user"  # [training] min_trust: the least trusted memory a sleep may train on
    # [training] modules = "per-topic" (True) or "per-sleep" (False); None, unset: per topic wherever
    # the sleep can (consolidate.trains_per_topic), so a forget stays within its topic's module
    topic_modules: bool | None = None
    store_url: str | None = None  # [store] url: memories in PostgreSQL; None keeps them in memory.db
    store_schema: str = "lifelong"  # [store] schema: this mind's schema in that database

    @property
    def privacy_policy(self) -> PrivacyPolicy:
        return PrivacyPolicy.from_mapping(self.privacy)

    def to_toml(self) -> str:
        text = (
            "# lifelong mind configuration\n[lifelong]\n"
            f"format = {self.format}\nmodel = {_quote(self.model)}\nembedder = {_quote(self.embedder)}\n"
        )
        if self.teacher_url and self.teacher_model:
            text += f"\n[teacher]\nurl = {_quote(self.teacher_url)}\nmodel = {_quote(self.teacher_model)}\n"
        if self.answer_trust != "user":
            text += f"\n[answers]\nmin_trust = {_quote(self.answer_trust)}\n"
        if self.train_trust != "user" or self.topic_modules is not None:
            text += "\n[training]\n" + (f"min_trust = {_quote(self.train_trust)}\n" if self.train_trust != "user" else "")
            if self.topic_modules is not None:
                text += f"modules = {_quote(MODULES_PER_TOPIC if self.topic_modules else MODULES_PER_SLEEP)}\n"
        if self.store_url:
            text += f"\n[store]\nurl = {_quote(self.store_url)}\nschema = {_quote(self.store_schema)}\n"
        if self.privacy:
            text += "\n[privacy]\n" + "".join(f"{kind} = {_quote(action)}\n" for kind, action in sorted(self.privacy.items()))
        return text


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_config(directory: Path) -> MindConfig:
    path = directory / CONFIG_FILE
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        data = document.get("lifelong", {})
        teacher = document.get("teacher", {})
        privacy = document.get("privacy", {})
        answers = document.get("answers", {})
        training = document.get("training", {})
        store = document.get("store", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MindError(f"{path} is not valid TOML ({exc}); fix it or remove it and run `lifelong init`") from exc
    fmt = int(data.get("format", CONFIG_FORMAT))
    if fmt > CONFIG_FORMAT:
        raise MindError(f"{path} has format {fmt}, newer than this lifelong understands ({CONFIG_FORMAT}); upgrade lifelong")
    if not isinstance(data.get("model"), str):
        raise MindError(f"{path} has no [lifelong] model = \"...\" entry; add one (e.g. model = \"smollm2-135m\")")
    if teacher and not (isinstance(teacher.get("url"), str) and isinstance(teacher.get("model"), str)):
        raise MindError(f"{path} has a [teacher] table without both url = \"...\" and model = \"...\"; add both or remove the table")
    try:
        policy = PrivacyPolicy.from_mapping(privacy if isinstance(privacy, dict) else {"[privacy]": privacy})
    except InputError as exc:
        raise MindError(f"{path}: {exc}") from exc
    answer_trust = answers.get("min_trust", "user") if isinstance(answers, dict) else None
    if answer_trust not in TRUST_LEVELS:
        raise MindError(f"{path}: [answers] min_trust = {answer_trust!r} is not a trust level; choose from: {', '.join(TRUST_LEVELS)}")
    train_trust = training.get("min_trust", "user") if isinstance(training, dict) else None
    if train_trust not in TRUST_LEVELS:
        raise MindError(f"{path}: [training] min_trust = {train_trust!r} is not a trust level; choose from: {', '.join(TRUST_LEVELS)}")
    modules = training.get("modules") if isinstance(training, dict) else None  # not a table: refused above
    if modules not in (None, MODULES_PER_SLEEP, MODULES_PER_TOPIC):
        raise MindError(f"{path}: [training] modules = {modules!r} is not one of {MODULES_PER_SLEEP!r}, {MODULES_PER_TOPIC!r}")
    if store and not (isinstance(store, dict) and isinstance(store.get("url"), str)
                      and isinstance(store.get("schema", "lifelong"), str)):
        raise MindError(f"{path} has a [store] table without url = \"postgresql://...\"; add it or remove the table")
    return MindConfig(model=data["model"], embedder=data.get("embedder", "all-MiniLM-L6-v2"), format=fmt,
                      teacher_url=teacher.get("url"), teacher_model=teacher.get("model"), privacy=policy.overrides(),
                      answer_trust=answer_trust, train_trust=train_trust, topic_modules=None if modules is None else modules == MODULES_PER_TOPIC,
                      store_url=store.get("url") if store else None, store_schema=store.get("schema", "lifelong") if store else "lifelong")


def write_config(directory: Path, config: MindConfig) -> None:
    path = directory / CONFIG_FILE
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(config.to_toml(), encoding="utf-8")
    tmp.replace(path)


def require_mind(directory: Path) -> MindConfig:
    """The config of the mind at `directory`, or the error that says how to make one. For
    commands (du, prune, backup) that need no model or embedder, only a real mind."""
    if not (directory / CONFIG_FILE).is_file():
        raise MindError(f"no mind at {directory}; create one with `lifelong init --mind {directory}` (or pass --mind DIR)")
    return read_config(directory)
