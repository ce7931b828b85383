"""The evolving system: one directory holds a mind's memories and configuration.

`Mind` is the public API; the CLI and (later) the server are thin wrappers over it. The
language model is loaded only when a question is asked, so `learn` and `recall` stay fast.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifelong.errors import GateRefusedError, InputError, MindError, NotFoundError
from lifelong.memory.embedder import Embedder, MiniLMEmbedder
from lifelong.memory.injection import InstructionScreen
from lifelong.memory.poisoning import NEIGHBOURS, Screening, contradictions, initial_quarantine, judge_contradictions
from lifelong.memory.private_data import describe
from lifelong.memory.ingest import MAX_CHUNK_WORDS, chunk_text, chunks_kind, decode_text, parse_document, parse_path, validate_labels
from lifelong.memory.records import PENDING, TRUST_LEVELS, Memory, NewMemory, RecallHit
from lifelong.memory.retrieval import HybridRetriever, Mode
from lifelong.memory.backends import Store, default_schema, is_postgres_url, open_store
from lifelong.memory.store import WriteResult
from lifelong.mind_config import CONFIG_FILE, MindConfig, read_config, write_config
from lifelong.model.registry import DEFAULT_MODEL
from lifelong.paths import mind_dir
from lifelong.progress import quiet_libraries
from lifelong.prompt import build_messages, cited_memories
from lifelong.evaluate.gate import GatePolicy
from lifelong.versions import BASE_VERSION, Manifest, VersionRegistry

if TYPE_CHECKING:  # the model stack loads when a model is needed, so `recall` and `learn` start fast
    from lifelong.export import ExportReport
    from lifelong.consolidate import SleepConfig, SleepResult
    from lifelong.model.language_model import LanguageModel

MEMORY_DB = "memory.db"


@dataclass(frozen=True)
class LearnReport:
    results: list[WriteResult]
    private: list[dict[str, Any]] = field(default_factory=list)  # per memory with private data: id, redacted, kept out of training
    quarantined: dict[int, str] = field(default_factory=dict)  # new memory id -> why it was held as it was stored

    @property
    def created(self) -> list[int]:
        return [r.id for r in self.results if r.created]

    @property
    def duplicates(self) -> list[int]:
        return [r.id for r in self.results if not r.created]

    @property
    def superseded(self) -> list[int]:
        return sorted({s for r in self.results for s in r.superseded})

    @property
    def conflicts(self) -> list[int]:
        return sorted({c for r in self.results for c in r.conflicts})

    def to_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "duplicates": self.duplicates,
            "superseded": self.superseded,
            "conflicts": self.conflicts,
            "private_data": self.private,
            "quarantined": [{"id": i, "why": why} for i, why in self.quarantined.items()],
        }


FORGET_PROOFS = "forget_proofs.jsonl"  # one line per forget that reached served weights
ANSWER_OVERFETCH = 4  # with a trust floor, candidates retrieved per note an answer may hold


@dataclass(frozen=True)
class ForgetProof:
    """Held-out closed-book probes on the forgotten memories (`evaluate/probes.py`): the share
    the served model answered before the forget, after it, and the base model's share."""

    probes: int
    answered_before: float
    answered_after: float
    answered_by_base: float


@dataclass(frozen=True)
class ForgetReport:
    forgotten: list[Memory]
    learned_by: list[str]  # versions that had trained on them: none of their modules serves them now
    scrubbed: list[str]  # version folders rewritten without them
    proof: ForgetProof | None = None  # measured when the active version had learned them
    merged: list[str] = field(default_factory=list)  # merged checkpoints that had folded them in: their weights are deleted
    moved_to: str | None = None  # where the active pointer went when it stood on those weights

    def to_dict(self) -> dict[str, Any]:
        return {"forgotten": [m.id for m in self.forgotten], "learned_by": self.learned_by, "scrubbed": self.scrubbed,
                "proof": asdict(self.proof) if self.proof else None, "merged_checkpoints_deleted": self.merged,
                "active_moved_to": self.moved_to}


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    model: str
    used_memory: bool
    retrieved: list[RecallHit] = field(default_factory=list)
    citations: list[Memory] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "model": self.model,
            "used_memory": self.used_memory,
            "citations": [m.id for m in self.citations],
            "retrieved": [h.to_dict() for h in self.retrieved],
        }


@dataclass(frozen=True)
class PreparedAnswer:
    """A question ready to generate: the model that serves it, its prompt, the memories in it."""

    question: str
    lm: LanguageModel
    messages: list[dict[str, str]]
    retrieved: list[RecallHit]
    memories: list[Memory]

    def answer(self, text: str) -> Answer:
        return Answer(question=self.question, text=text, model=self.lm.name, used_memory=bool(self.memories),
                      retrieved=self.retrieved, citations=cited_memories(text, self.question, self.memories))


@dataclass(frozen=True)
class VersionDiff:
    old: str
    new: str
    added: list[Memory]
    removed: list[int]
    metric_deltas: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, "added": [m.id for m in self.added], "removed": self.removed,
                "metric_deltas": self.metric_deltas}


def _check_generation_settings(k: int, max_new_tokens: int, temperature: float) -> None:
    """Out-of-range settings fail with the fix, not deep inside generation after a model load."""
    if k < 1:
        raise InputError(f"--k must be at least 1 (got {k})")
    if max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be at least 1 (got {max_new_tokens}); pass the longest answer you want, in tokens")
    if not temperature >= 0:
        raise InputError(f"--temperature must be 0 (greedy) or more (got {temperature})")


class Mind:
    """A model plus its memory, stored in one directory (copy the directory, copy the mind)."""

    def __init__(self, path: Path, config: MindConfig, store: Store, embedder: Embedder,
                 language_model: LanguageModel | None = None) -> None:
        self.path = path
        self.config = config
        self.store = store
        self.embedder = embedder
        self.retriever = HybridRetriever(store, embedder)
        self.instruction_screen = InstructionScreen(embedder)
        self._base = language_model
        self._own_model = language_model is None  # loaded from config.model: its files can be exported for ONNX answers
        self._active: tuple[tuple[str, tuple[int, int]], LanguageModel] | None = None
        self._onnx: tuple[tuple[str, tuple[int, int]], Any] | None = None
        self._merged: tuple[str, LanguageModel] | None = None
        self.versions = VersionRegistry(path)

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    def init(cls, path: str | Path | None = None, model: str = DEFAULT_MODEL, store: str | None = None,
             schema: str | None = None, **kwargs: Any) -> Mind:
        """Create a mind directory (or open it, if it already exists with the same model).

        `store` (or LIFELONG_STORE) is a postgresql:// URL to keep the memories in PostgreSQL
        instead of the mind's own memory.db; `schema` names the mind's schema there (default:
        lifelong_<directory name>, so minds sharing a server never share rows)."""
        directory = mind_dir(path)
        if kwargs.get("language_model") is None:  # an injected model's name is only a label
            from lifelong.model.loader import check_model_reference

            model = check_model_reference(model)  # refused here, before anything is created
        if (directory / CONFIG_FILE).exists():
            existing = read_config(directory)
            store = store or None
            if store and existing.store_url != store:
                raise MindError(f"{directory} already exists and keeps its memories in "
                                f"{'another PostgreSQL database' if existing.store_url else 'memory.db'}; "
                                f"use `lifelong migrate --to URL` to move them, or another --mind directory")
            if existing.model != model:
                raise MindError(
                    f"{directory} is already a mind for model '{existing.model}'; use another --mind directory "
                    f"for '{model}', or change this mind's model with `lifelong config --model {model}`"
                )
        else:
            if directory.exists() and not directory.is_dir():
                raise MindError(f"{directory} exists and is not a directory; choose another --mind path")
            store = store or os.environ.get("LIFELONG_STORE") or None
            if store and not is_postgres_url(store):
                raise InputError(f"--store {store!r} is not a postgresql:// URL; pass postgresql://USER@HOST/DB or leave it "
                                 f"out to keep memories in the mind's own memory.db")
            config = MindConfig(model=model, store_url=store, store_schema=schema or default_schema(directory)) if store \
                else MindConfig(model=model)
            if store:  # reach the server before the directory exists: a wrong URL leaves nothing behind
                embedder = kwargs.get("embedder") or MiniLMEmbedder()
                open_store(store, embedder.name, embedder.dim, schema=config.store_schema).close()
            directory.mkdir(parents=True, exist_ok=True)
            write_config(directory, config)
        return cls.open(directory, **kwargs)

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        create: bool = False,
        model: str | None = None,
        embedder: Embedder | None = None,
        language_model: LanguageModel | None = None,
    ) -> Mind:
        """Open an existing mind; with `create`, make it first if it does not exist.

        `model` overrides the configured model for this session only; `language_model` and
        `embedder` inject ready objects (tests, notebooks that already hold a model).
        """
        directory = mind_dir(path)
        if not (directory / CONFIG_FILE).exists():
            if create:
                return cls.init(directory, model=model or DEFAULT_MODEL, embedder=embedder, language_model=language_model)
            raise MindError(f"no mind at {directory}; create one with `lifelong init --mind {directory}` (or `lifelong learn`)")
        config = read_config(directory)
        if model:
            config = dataclasses.replace(config, model=model)
        embedder = embedder or MiniLMEmbedder()
        if config.embedder != embedder.name:
            raise MindError(f"{directory} uses embedder '{config.embedder}', which this lifelong does not provide")
        store = open_store(config.store_url or directory / MEMORY_DB, embedder.name, embedder.dim, create=True,
                           schema=config.store_schema)
        return cls(directory, config, store, embedder, language_model)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Mind:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_model(self) -> LanguageModel:
        """The frozen base model; never modified (adapters go on copies)."""
        if self._base is None:
            from lifelong.model.loader import load_model

            self._base = load_model(self.config.model)
        return self._base

    def version_model(self, version_id: str) -> LanguageModel:
        """The model a version would serve (promoted or not), without any module that learned a
        memory since forgotten: for inspection and benchmarks."""
        if version_id == BASE_VERSION:
            return self._foundation(version_id)  # no module: the training stack need not even be imported
        from lifelong.consolidate import version_model

        manifest = self.versions.get(version_id)
        existing = self.store.get_many(manifest.memory_ids)
        return version_model(self.versions, version_id, self._foundation(version_id), self.embedder, existing=existing)

    @property
    def language_model(self) -> LanguageModel:
        """The active version's model: its merged checkpoint and/or its module applied, minus
        every module that learned a memory since forgotten (or, routed, superseded): what the
        weights knew of a forgotten memory stops being served the moment it is forgotten."""
        key = (self.versions.active_id(), self.store.revision())
        if self._active is None or self._active[0] != key:
            with quiet_libraries():
                self._active = (key, self.version_model(key[0]))
        return self._active[1]

    def answer_model(self) -> Any:
        """The active version's model for one greedy answer: on ONNX Runtime, without torch,
        where the served weights are this mind's own model with no module, one module or a
        routed library of plain LoRA modules (model/onnx_serving.py; the graph is exported
        from the torch model the first time), else `language_model`. Both serve the same
        module on the same question; tests/test_onnx_decoding.py checks that they answer alike."""
        if not self._own_model or os.environ.get("LIFELONG_TORCH_ANSWERS"):
            return self.language_model
        from lifelong.model.onnx_serving import answer_graph, export_answer_graph, onnx_version_model

        key = (self.versions.active_id(), self.store.revision())
        if self._onnx is None or self._onnx[0] != key:
            onnx = onnx_version_model(self.versions, self.store, self.embedder, self.config.model)
            graph = answer_graph(self.config.model)
            on_base = self.versions.foundation_id(key[0]) is None  # a merge's checkpoint answers on torch
            if onnx is None and on_base and graph is not None and not graph.is_file():
                try:
                    with quiet_libraries():
                        exported = export_answer_graph(self.base_model.model, self.config.model)
                except (OSError, RuntimeError, ValueError) as exc:  # a failed export must not cost the answer
                    warnings.warn(f"could not export {self.config.model} for ONNX Runtime answers ({exc}); answering on torch",
                                  stacklevel=2)
                    exported = False
                if exported:
                    onnx = onnx_version_model(self.versions, self.store, self.embedder, self.config.model)
            self._onnx = (key, onnx)
        return self._onnx[1] if self._onnx[1] is not None else self.language_model

    def _foundation(self, version_id: str) -> LanguageModel:
        """The checkpoint under a version: the base, or the merge it builds on (cached)."""
        merge_id = self.versions.foundation_id(version_id)
        if merge_id is None:
            return self.base_model
        if self._merged is None or self._merged[0] != merge_id:
            from lifelong.merge import load_checkpoint
            from lifelong.versions.layout import CHECKPOINT

            base = self.base_model
            with quiet_libraries():
                self._merged = (merge_id, load_checkpoint(self.versions.path(merge_id) / CHECKPOINT, base))
        return self._merged[1]

    # -- consolidation and versions ------------------------------------------------------

    def sleep_config(self, config: SleepConfig) -> SleepConfig:
        """`config` with what this mind decides filled in: its [training] min_trust, its
        [training] modules unless the sleep says, and its embedder."""
        config = dataclasses.replace(config, min_trust=self.config.train_trust,
                                     topic_modules=self.config.topic_modules if config.topic_modules is None else config.topic_modules)
        return config if config.embedder is not None else dataclasses.replace(config, embedder=self.embedder)

    def sleep(self, config: SleepConfig | None = None, report: Callable[[str], None] = lambda _m: None,
              progress: Any = None) -> SleepResult:
        """Consolidate memories not yet in the active module into a new, gated version. Under
        `torchrun --nproc-per-node N -m lifelong sleep`, training is data-parallel across the N
        processes (learn/distributed.py); rank 0 returns the result, the others a note."""
        from lifelong.consolidate import SleepConfig, run_sleep

        from lifelong.learn import distributed

        config = self.sleep_config(config or SleepConfig())
        distributed.start()  # under torchrun: join the other ranks (rank 0 selects, gates and commits)
        if distributed.is_main():
            self.screen_pending(report)  # nothing unchecked is trained on
        else:
            report, progress = (lambda _m: None), None
        base = self.base_model
        with quiet_libraries():  # peft and transformers warn about their internals while training
            return run_sleep(self.path, base, self.store.list(), config, report, progress, foundation_for=self._foundation)

    def merge(self, report: Callable[[str], None] = lambda _m: None, policy: GatePolicy | None = None) -> SleepResult:
        """Fold the active module into a new base checkpoint, gated like a sleep."""
        from lifelong.merge import merge_active

        base = self.base_model
        with quiet_libraries():
            return merge_active(self.path, base, self._foundation, self.store.list(),
                                policy=policy or GatePolicy(), report=report)

    def show(self, version_id: str) -> Manifest:
        return self.versions.get(version_id)

    def export(self, version_id: str, folder: str | Path, merged: bool = False, base: bool = True) -> ExportReport:
        """Write a version as standard PEFT adapters (plus the weights they apply to, and the
        merged weights on request) for other engines such as vLLM; modules that learned a
        forgotten memory stay behind (lifelong/export.py)."""
        from lifelong.export import export_version

        manifest = self.versions.get(version_id) if version_id != BASE_VERSION else None
        existing = self.store.get_many(manifest.memory_ids) if manifest else {}
        with quiet_libraries():
            report = export_version(self.versions, version_id, self._foundation, existing, Path(folder),
                                    merged=merged, base=base)
        self.versions.audit("exported", version_id, folder=str(Path(folder).resolve()),
                            modules=list(report.adapters), left_out=report.left_out, merged=report.merged is not None)
        return report

    def diff(self, old_id: str, new_id: str) -> VersionDiff:
        """What changed between two versions: memories added and removed, metric deltas."""
        old = self.versions.get(old_id) if old_id != BASE_VERSION else None
        new = self.versions.get(new_id) if new_id != BASE_VERSION else None
        old_ids = set(old.memory_ids) if old else set()
        new_ids = set(new.memory_ids) if new else set()
        old_metrics = old.metrics if old else {}
        new_metrics = new.metrics if new else {}
        deltas = {
            key: new_metrics[key] - old_metrics[key]
            for key in sorted(set(old_metrics) & set(new_metrics))
            if isinstance(new_metrics[key], (int, float)) and isinstance(old_metrics[key], (int, float))
            and not isinstance(new_metrics[key], bool)
        }
        memories = {m.id: m for m in self.store.list()}
        return VersionDiff(old_id, new_id, [memories[i] for i in sorted(new_ids - old_ids) if i in memories],
                           sorted(old_ids - new_ids), deltas)

    def rollback(self, version_id: str, force: bool = False) -> None:
        """Make an earlier version (or 'base') active again; nothing is deleted.

        A version the gate refused is not activated unless `force`: the gate's reasons are why
        it was kept out, and a rollback should not quietly undo that judgement.
        """
        with self.versions.exclusive("rollback"):
            if version_id != BASE_VERSION:
                self._check_can_activate(self.versions.get(version_id), force)
            self.versions.activate(version_id, "forced rollback" if force else "rollback")

    def _check_can_activate(self, manifest: Manifest, force: bool) -> None:
        if manifest.base_model != self.base_model_name:
            raise InputError(
                f"{manifest.id} was trained on '{manifest.base_model}' and only fits that model, but this mind now uses "
                f"'{self.base_model_name}'; switch back first with `lifelong config --model {manifest.base_model}`"
            )
        from lifelong.unlearn import lost_foundation, weights_deleted

        under = lost_foundation(self.versions, manifest.id)
        if under is not None and under != manifest.id:
            raise MindError(f"{manifest.id} stands on merge {under}, whose weights were deleted when memories it held were "
                            f"forgotten; roll back to another version, or run `lifelong sleep` to rebuild")
        gone = weights_deleted(self.versions, manifest)
        if gone:
            raise MindError(f"{manifest.id} learned memories since forgotten ({', '.join(f'#{i}' for i in gone[:5])}) and its "
                            f"weights were deleted with them; roll back to another version, or run `lifelong sleep` to rebuild")
        if not manifest.verdict.passed and not force:
            raise GateRefusedError(
                f"the gate refused {manifest.id} ({'; '.join(manifest.verdict.reasons) or 'no reason recorded'}); "
                f"see `lifelong show {manifest.id}`, and pass --force to activate it anyway"
            )

    @property
    def base_model_name(self) -> str:
        """The name versions record as their base model, known without loading the model."""
        return self._base.name if self._base is not None else self.config.model

    def set_model(self, reference: str) -> MindConfig:
        """Make another model this mind's base. Modules fit only the model they were trained on,
        so the change is refused while a version is active: roll back to base first (versions
        are kept, and rollback refuses those of another model) or make a new mind."""
        from lifelong.versions.layout import RETENTION_PROBES
        from lifelong.model.loader import check_model_reference

        model = check_model_reference(reference)
        if model == self.config.model:
            return self.config
        with self.versions.exclusive("config"):
            active = self.versions.active_id()
            if active != BASE_VERSION:
                raise InputError(
                    f"the active version {active} was trained on '{self.config.model}' and only fits that model; roll back "
                    f"first (`lifelong rollback base`, {active} is kept) or make a new mind (`lifelong init --mind DIR --model {model}`)"
                )
            previous, self.config = self.config.model, dataclasses.replace(self.config, model=model)
            write_config(self.path, self.config)
            # The gate's retention probes are the old base's own completions: the next sleep
            # records them again from the new base.
            (self.path / RETENTION_PROBES).unlink(missing_ok=True)
            self.versions.audit("model changed", BASE_VERSION, previous=previous, model=model)
        self._base = self._active = self._merged = self._onnx = None
        return self.config

    # -- learning ------------------------------------------------------------------------

    def learn(
        self,
        text: str,
        *,
        source: str = "api",
        trust: str = "user",
        namespace: str = "default",
        key: str | None = None,
        supersedes: Sequence[int] = (),
    ) -> LearnReport:
        """Remember a text now; long texts are chunked. `key` names what the fact is about,
        so a later fact with the same key supersedes it."""
        validate_labels(source, trust, namespace)
        if not text.strip():
            raise InputError("the text to learn is empty; pass the fact or document to remember")
        chunks = [text.strip()] if len(text.split()) <= MAX_CHUNK_WORDS else chunk_text(text)
        kind = chunks_kind(chunks)
        records = [NewMemory(c, source, trust, namespace, kind, key) for c in chunks]
        return self.learn_records(records, supersedes=supersedes)

    def learn_files(
        self,
        paths: Iterable[str | Path],
        *,
        source: str | None = None,
        trust: str = "user",
        namespace: str = "default",
        supersedes: Sequence[int] = (),
    ) -> LearnReport:
        """Learn files ('-' is stdin). All files are parsed before the first write: one bad
        file means nothing is stored."""
        validate_labels(source or "file", trust, namespace)
        records: list[NewMemory] = []
        for raw in paths:
            if str(raw) == "-":
                text = decode_text(sys.stdin.buffer.read(), "standard input")
                records += parse_document(text, "standard input", source or "stdin", trust, namespace)
            else:
                records += parse_path(Path(raw), source, trust, namespace)
        if not records:
            raise InputError("no files given; pass one or more paths, or - for standard input")
        return self.learn_records(records, supersedes=supersedes)

    def learn_records(self, records: Sequence[NewMemory], supersedes: Sequence[int] = ()) -> LearnReport:
        """Store a batch: private data is handled by the mind's policy before anything is
        written (a refused kind anywhere in the batch stores nothing)."""
        for record in records:
            validate_labels(record.source, record.trust, record.namespace)
        policy = self.config.privacy_policy
        screened = [policy.screen(r.text) for r in records]
        refused = [(i, s) for i, s in enumerate(screened) if s.refused]
        if refused:
            i, first = refused[0]
            kinds = first.refused
            raise InputError(f"refused to learn: {'text' if len(records) == 1 else f'item {i + 1}'} holds a {describe(kinds)} "
                             f"(the mind's privacy policy refuses it); remove it, or set [privacy] {kinds[0]} = \"redact\" "
                             f"or \"no-train\" in {self.path / CONFIG_FILE}")
        vectors = self.embedder.embed([s.text for s in screened])
        screen = [i for i, r in enumerate(records) if r.trust != "trusted" and not r.quarantine]  # trusted text is never held
        instructions: dict[int, str | None] = dict(zip(screen, self.instruction_screen.flags(
            [screened[i].text for i in screen], vectors[screen]), strict=True)) if screen else {}
        records = [dataclasses.replace(r, text=s.text, no_train=",".join(s.no_train) or r.no_train,
                                       quarantine=r.quarantine or initial_quarantine(instructions.get(i), r.trust))
                   for i, (r, s) in enumerate(zip(records, screened, strict=True))]
        results = self.store.add(records, vectors, supersedes=supersedes)
        private = [{"id": result.id, **s.to_dict()} for result, s in zip(results, screened, strict=True) if s.findings]
        held = {result.id: r.quarantine for result, r in zip(results, records, strict=True)
                if result.created and r.quarantine and r.quarantine != PENDING}
        report = LearnReport(results, private, held)
        self.versions.audit("learn", self.versions.active_id(), created=len(report.created), duplicates=len(report.duplicates),
                            superseded=report.superseded, sources=sorted({r.source for r in records}),
                            trust=sorted({r.trust for r in records}),
                            private_data=sorted({k for s in screened for k in (*s.redacted, *s.no_train)}))  # kinds, never values
        return report

    # -- reading -------------------------------------------------------------------------

    def recall(
        self,
        query: str,
        k: int = 5,
        *,
        mode: Mode = "hybrid",
        namespace: str | None = None,
        include_superseded: bool = True,
    ) -> list[RecallHit]:
        if not query.strip():
            raise InputError("the query is empty; pass the text to search memories for")
        if k < 1:
            raise InputError(f"--k must be at least 1 (got {k})")
        return self.retriever.search(query, k, mode=mode, namespace=namespace, include_superseded=include_superseded)

    def ask(
        self,
        question: str,
        *,
        use_memory: bool = True,
        k: int = 3,
        namespace: str | None = None,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> Answer:
        """Answer with the model; with memory, the top current memories go into the prompt.
        Greedy answers run on ONNX Runtime where the served weights allow (see `answer_model`)."""
        prepared = self.prepare_answer(question, use_memory=use_memory, k=k, namespace=namespace,
                                       max_new_tokens=max_new_tokens, temperature=temperature,
                                       fast=temperature == 0)
        text = prepared.lm.generate(prepared.messages, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        return prepared.answer(text)

    def prepare_answer(
        self,
        question: str,
        *,
        history: Sequence[dict[str, str]] = (),
        use_memory: bool = True,
        k: int = 3,
        namespace: str | None = None,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        fast: bool = False,
    ) -> PreparedAnswer:
        """Everything `ask` does before generating: the served model and the prompt (earlier
        turns of a conversation in `history`, the retrieved memories with the question). The
        server generates many prepared answers in one batch, or streams one, on the torch
        model; with `fast`, a single greedy answer's model may be the ONNX Runtime one."""
        if not question.strip():
            raise InputError("the question is empty; pass a question to ask")
        _check_generation_settings(k, max_new_tokens, temperature)  # before the model loads
        lm = self.answer_model() if fast else self.language_model
        lm.check_fits(len(lm.encode(question)), max_new_tokens, what="question")
        hits: list[RecallHit] = []
        if use_memory:
            self.screen_pending()  # nothing unchecked is answered from
        if use_memory and self.store.count():
            floor = TRUST_LEVELS.index(self.config.answer_trust)  # the mind's [answers] min_trust
            wide = k * ANSWER_OVERFETCH if floor else k  # notes the policy drops must not crowd out the ones it keeps
            hits = self.recall(question, wide, namespace=namespace, include_superseded=False)
            hits = [h for h in hits if TRUST_LEVELS.index(h.memory.trust) >= floor][:k]
        hits = sorted(hits, key=lambda h: -TRUST_LEVELS.index(h.memory.trust))  # stable: an untrusted note never outranks a user or trusted one
        memories = [h.memory for h in hits]
        turns = [{"role": m["role"], "content": m["content"]} for m in history if m["role"] in ("user", "assistant")]

        def prompt() -> list[dict[str, str]]:
            system, *rest = build_messages(question, memories)
            return [system, *turns, *rest]

        messages = prompt()
        while (turns or memories) and len(lm.encode(lm.format_chat(messages))) > lm.context_window - max_new_tokens:
            if turns:
                turns = turns[2:] if len(turns) > 1 else []  # the oldest exchange goes first
            else:
                memories = memories[:-1]  # then the weakest memory, until the prompt fits
            messages = prompt()
        return PreparedAnswer(question, lm, messages, hits[: len(memories)], memories)

    # -- quarantine -----------------------------------------------------------------------

    def screen_pending(self, report: Callable[[str], None] = lambda _m: None) -> list[Screening]:
        """Check the memories learned since the last check against what the base model and the
        nearest current memories confidently say (see memory/poisoning.py). From below
        `trusted`, a contradiction of the model, or of a memory of higher trust, quarantines
        the new memory; a contradiction of a memory of equal or lower trust is a correction:
        the old memory is superseded. Runs before answers and sleeps, so nothing unchecked is
        ever answered from or trained on, while `learn` itself never loads the model."""
        pending = self.store.pending_screening()
        if not pending:
            return []
        report(f"checking {len(pending)} new {'memory' if len(pending) == 1 else 'memories'} against the model and memory")
        lm = self.base_model
        results = []
        for memory in pending:
            hits = self.recall(memory.text, NEIGHBOURS + 1, mode="vector", namespace=memory.namespace, include_superseded=False)
            neighbours = [h.memory for h in hits if h.memory.id != memory.id and h.memory.quarantine is None][:NEIGHBOURS]
            screening = judge_contradictions(memory, neighbours, contradictions(lm, memory.text, neighbours))
            self.store.set_quarantine(memory.id, screening.quarantine)
            for old_id in screening.supersedes:
                self.store.supersede(old_id, memory.id)
            if screening.quarantine or screening.supersedes:
                self.versions.audit("quarantine" if screening.quarantine else "correction", self.versions.active_id(),
                                    memory=memory.id, source=memory.source, trust=memory.trust,
                                    superseded=list(screening.supersedes))
            results.append(screening)
        return results

    def quarantined(self) -> list[Memory]:
        """Memories held back by a check: kept, never answered from nor trained on."""
        self.screen_pending()
        return self.store.quarantined()

    def approve(self, memory_id: int) -> Memory:
        """Release a quarantined memory: a person vouched for it, so an untrusted one is raised
        to `user` trust (its source stays recorded) and from now on it is answered from and
        trained on like the person's own notes."""
        memory = self._quarantined(memory_id)
        vouched = "user" if memory.trust == "untrusted" else None
        self.store.set_quarantine(memory_id, None, trust=vouched)
        self.versions.audit("quarantine approved", self.versions.active_id(), memory=memory_id, source=memory.source,
                            trust=vouched or memory.trust)
        return self.store.get(memory_id)

    def reject(self, memory_id: int) -> ForgetReport:
        """Forget a quarantined memory (it was never trained on, so only the store changes)."""
        self._quarantined(memory_id)
        self.versions.audit("quarantine rejected", self.versions.active_id(), memory=memory_id)
        return self.forget_many([memory_id])

    def _quarantined(self, memory_id: int) -> Memory:
        memory = self.store.get(memory_id)
        if not memory.quarantined:
            raise InputError(f"memory #{memory_id} is not in quarantine; nothing changed (see `lifelong quarantine`)")
        return memory

    def remember_turn(self, user_text: str, namespace: str = "default") -> LearnReport:
        """Chat turns are experiences too: what the user said is remembered (the model's own
        replies are not, so its mistakes never become 'facts')."""
        return self.learn(user_text, source="chat", trust="user", namespace=namespace)

    def memories(self, *, namespace: str | None = None, source: str | None = None,
                 include_superseded: bool = True, contains: str | None = None, limit: int | None = None) -> list[Memory]:
        return self.store.list(namespace=namespace, source=source, include_superseded=include_superseded,
                               contains=contains, limit=limit)

    def forget(self, memory_id: int) -> Memory:
        """Remove a memory from the store, both retrieval indexes and every version (see `forget_many`)."""
        return self.forget_many([memory_id]).forgotten[0]

    def forget_where(self, *, namespace: str | None = None, source: str | None = None,
                     contains: str | None = None) -> ForgetReport:
        """Forget every memory matching all the given filters (superseded ones included)."""
        if namespace is None and source is None and contains is None:
            raise InputError("name what to forget: a memory id, or --source, --namespace or --contains")
        matches = self.store.list(namespace=namespace, source=source, contains=contains)
        if not matches:
            raise NotFoundError("no memory matches those filters; nothing was forgotten (see `lifelong memories` with the same filters)")
        return self.forget_many([m.id for m in matches])

    def forget_many(self, memory_ids: Sequence[int]) -> ForgetReport:
        """Remove memories from the store and both indexes, and from every version: rows and
        router keys naming them leave the version folders, and a module that learned one loses
        its weights and stops serving at once (the next sleep relearns its other memories).
        Every id is checked first, so a bad one changes nothing; refused while a sleep, merge
        or rollback is changing the versions."""
        from lifelong.evaluate.probes import accuracy, acquisition_probes
        from lifelong.unlearn import lost_foundation, scrub_versions, servable_ancestor

        ids = list(dict.fromkeys(memory_ids))
        with self.versions.exclusive("forget"):
            found = self.store.get_many(ids)
            missing = [i for i in ids if i not in found]
            if missing:
                raise NotFoundError(f"no memory with id {missing[0]} (forgotten already, or never made); nothing was "
                                    f"forgotten; see `lifelong memories` for the ids that exist")
            versions = self.versions.list()
            learned_by = [v.id for v in versions if set(ids) & set(v.trained_memory_ids)]
            active = self.versions.active_id()
            served = active != BASE_VERSION and set(ids) & set(self.versions.get(active).memory_ids)
            probes = acquisition_probes(list(found.values())) if served else []
            before = accuracy(self.language_model, probes) if probes else None
            forgotten = [self.store.delete(i) for i in ids]
            self.store.purge_deleted()
            scrubbed = scrub_versions(self.versions, forgotten)
            moved_to = None
            if lost_foundation(self.versions, active) is not None:  # it stood on merged weights that held them
                moved_to = servable_ancestor(self.versions, active)
                self.versions.activate(moved_to, "forget: the merged weights under the active version held a forgotten memory")
            self._active = self._merged = self._onnx = None
            now_active = self.versions.active_id()
            proof = None
            if probes:  # the weights served them: measure that they no longer do, against the base
                proof = ForgetProof(len(probes), before, accuracy(self.language_model, probes),
                                    accuracy(self._foundation(now_active), probes))
                with open(self.path / FORGET_PROOFS, "a", encoding="utf-8") as handle:  # ids and hashes only, never the text
                    handle.write(json.dumps({"time": time.time(), "memories": ids, "hashes": [m.content_hash for m in forgotten],
                                             "active": active, "active_now": now_active, "learned_by": learned_by,
                                             **asdict(proof)}) + "\n")
            self.versions.audit("forget", active, memories=ids, versions_scrubbed=scrubbed, active_now=now_active,
                                **({"proof": asdict(proof)} if proof else {}))
        merged = [v.id for v in versions if v.kind == "merge" and set(ids) & set(v.memory_ids)]
        return ForgetReport(forgotten, learned_by, scrubbed, proof, merged, moved_to)
