"""The `lifelong` command: one thin command per workflow over the `Mind` API.

Read commands take --json so scripts and tests can use them; errors print one line naming
the problem and the fix, and exit non-zero.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lifelong.bench import EXPECTED_FULL_RUN
from lifelong.errors import InputError, Interrupted, LifelongError
from lifelong.learn.strategies import KNOWN as KNOWN_STRATEGY_COMPONENTS
from lifelong.memory.private_data import describe
from lifelong.memory.records import PENDING, TRUST_LEVELS
from lifelong.mind import Answer, LearnReport, Mind
from lifelong.model.registry import DEFAULT_MODEL, PACKAGED_MODELS
from lifelong.progress import console as progress_console
from lifelong.progress import report_stage, status, step_progress
from lifelong.versions import BASE_VERSION

app = typer.Typer(
    name="lifelong",
    help="A language model that keeps learning after deployment: remember now, consolidate later.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

MindOption = Annotated[Optional[Path], typer.Option("--mind", help="Mind directory [env: LIFELONG_MIND; default ./.lifelong]", show_default=False)]
ModelOption = Annotated[Optional[str], typer.Option("--model", help=f"Model for this command: a packaged name ({', '.join(PACKAGED_MODELS)}), a local folder, or a hub id")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout")]
NamespaceOption = Annotated[Optional[str], typer.Option("--namespace", "-n", help="Only this namespace")]

out = Console()


def package_version() -> str:
    """The installed distribution's version (the one pip reports), or the source tree's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lifelong")
    except PackageNotFoundError:
        from lifelong import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        out.print(f"lifelong {package_version()}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit", is_eager=True,
                                          callback=_print_version)] = False,
) -> None:
    """A language model that keeps learning after deployment: remember now, consolidate later."""


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _learn_summary(report: LearnReport) -> str:
    parts = [f"learned {_count(len(report.created), 'new memory', 'new memories')}"]
    if report.duplicates:
        parts.append(f"{len(report.duplicates)} already known")
    if report.superseded:
        parts.append("superseded " + ", ".join(f"#{i}" for i in report.superseded))
    if report.conflicts:
        parts.append("kept higher-trust " + ", ".join(f"#{i}" for i in report.conflicts) + " current (not overwritten)")
    lines = ["; ".join(parts)]
    for found in report.private:  # kinds only: the values must not reach a terminal log either
        done = []
        if found["redacted"]:
            done.append(f"redacted {describe(found['redacted'])}")
        if found["kept_out_of_training"]:
            done.append(f"kept {describe(found['kept_out_of_training'])}, never trained on")
        if done:
            lines.append(f"  #{found['id']}: private data: " + "; ".join(done))
    allowed = Counter(kind for found in report.private for kind in found.get("allowed", ()))
    for kind, count in sorted(allowed.items()):  # one line per kind: a batch of facts about people names many
        lines.append(f"  {describe([kind])} found in {count} {'memory' if count == 1 else 'memories'}: stored and "
                     f"trained on as written (set [privacy] {kind} = \"no-train\" or \"redact\" in the mind's config.toml to change)")
    for memory_id, why in report.quarantined.items():
        lines.append(f"  #{memory_id}: quarantined, {why}; never answered from nor trained on until "
                     f"`lifelong quarantine approve {memory_id}`")
    return "\n".join(lines)


@app.command()
def init(
    mind: MindOption = None,
    model: Annotated[str, typer.Option(help="Base model of this mind")] = DEFAULT_MODEL,
    store: Annotated[Optional[str], typer.Option(help="postgresql://... to keep memories in PostgreSQL + pgvector "
                                                      "[default: LIFELONG_STORE, else the mind's own memory.db]")] = None,
    schema: Annotated[Optional[str], typer.Option(help="The mind's PostgreSQL schema [default: lifelong_<directory name>]")] = None,
) -> None:
    """Create a mind directory (memory database and config)."""
    with Mind.init(mind, model=model, store=store, schema=schema) as created:
        where = f"PostgreSQL, schema {created.config.store_schema}" if created.config.store_url else "memory.db"
        out.print(f"mind ready at {created.path} (model {created.config.model}, {created.store.count()} memories in {where})")


@app.command()
def learn(
    paths: Annotated[list[str], typer.Argument(help="Files (.txt, .md, .jsonl) to learn, or - for standard input")],
    source: Annotated[Optional[str], typer.Option(help="Where these memories came from [default: the file path]")] = None,
    trust: Annotated[str, typer.Option(help=f"Trust level: {', '.join(TRUST_LEVELS)}")] = "user",
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace to store into")] = "default",
    supersedes: Annotated[Optional[list[int]], typer.Option(help="Memory id these new memories replace (repeatable)")] = None,
    mind: MindOption = None,
    json_output: JsonOption = False,
) -> None:
    """Remember files or standard input now (creates the mind if needed)."""
    try:
        with Mind.open(mind, create=True) as opened:
            report = opened.learn_files(paths, source=source, trust=trust, namespace=namespace, supersedes=supersedes or ())
    except KeyboardInterrupt:
        raise Interrupted("interrupted by Ctrl-C; nothing was learned (a learn writes all of its memories in one "
                          "transaction, or none); run it again to learn them") from None
    if json_output:
        _emit_json(report.to_dict())
    else:
        out.print(_learn_summary(report), markup=False)  # quoted text and [privacy] are not markup


@app.command()
def recall(
    query: Annotated[str, typer.Argument(help="What to search memories for")],
    k: Annotated[int, typer.Option("--k", "-k", help="How many memories", min=1)] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, keyword or vector")] = "hybrid",
    namespace: NamespaceOption = None,
    current_only: Annotated[bool, typer.Option("--current-only", help="Hide superseded memories")] = False,
    mind: MindOption = None,
    json_output: JsonOption = False,
) -> None:
    """Retrieve memories (no model involved)."""
    if mode not in ("hybrid", "keyword", "vector"):
        raise InputError(f"--mode '{mode}' is not a retrieval mode; use hybrid, keyword or vector")
    with Mind.open(mind) as opened:
        hits = opened.recall(query, k, mode=mode, namespace=namespace, include_superseded=not current_only)  # type: ignore[arg-type]
    if json_output:
        _emit_json([h.to_dict() for h in hits])
        return
    table = Table("id", "score", "text", "source", "status")
    for hit in hits:
        status = "current" if hit.memory.current else f"superseded by #{hit.memory.superseded_by}"
        table.add_row(f"#{hit.memory.id}", f"{hit.score:.4f}", hit.memory.text, hit.memory.source, status)
    out.print(table if hits else "no memories match")


def _print_answer(answer: Answer) -> None:
    out.print(answer.text, markup=False, highlight=False)
    if answer.citations:
        cited = ", ".join(f"#{m.id} ({m.source})" for m in answer.citations)
        out.print(f"[dim]memories cited: {cited}[/dim]")
    elif answer.used_memory:
        out.print("[dim]memories in context, none cited by the answer[/dim]")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question")],
    no_memory: Annotated[bool, typer.Option("--no-memory", help="Answer from the model alone (no retrieval)")] = False,
    k: Annotated[int, typer.Option("--k", "-k", help="Memories to put in the prompt", min=1)] = 3,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens", min=1)] = 64,
    temperature: Annotated[float, typer.Option(help="0 is greedy (default); > 0 samples", min=0.0)] = 0.0,
    seed: Annotated[int, typer.Option(help="Sampling seed", min=0)] = 0,
    namespace: NamespaceOption = None,
    model: ModelOption = None,
    mind: MindOption = None,
    json_output: JsonOption = False,
) -> None:
    """Answer a question, with the memories used cited."""
    with Mind.open(mind, model=model) as opened:
        answer = opened.ask(question, use_memory=not no_memory, k=k, namespace=namespace,
                            max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    if json_output:
        _emit_json(answer.to_dict())
    else:
        _print_answer(answer)


@app.command()
def chat(
    no_memory: Annotated[bool, typer.Option("--no-memory", help="Answer from the model alone")] = False,
    model: ModelOption = None,
    mind: MindOption = None,
) -> None:
    """Talk with the mind; every turn you type is remembered. End with Ctrl-D or /exit."""
    with Mind.open(mind, create=True, model=model) as opened:
        out.print(f"[dim]chatting with {opened.config.model}; your turns are remembered in {opened.path}[/dim]")
        while True:
            try:
                line = input("you> ").strip()
            except EOFError:
                break
            if line in {"/exit", "/quit"}:
                break
            if not line:
                continue
            try:
                answer = opened.ask(line, use_memory=not no_memory)
                _print_answer(answer)
                opened.remember_turn(line)
            except LifelongError as exc:
                out.print(f"[red]error:[/red] {exc}")


@app.command()
def memories(
    namespace: NamespaceOption = None,
    source: Annotated[Optional[str], typer.Option(help="Only memories from this source")] = None,
    contains: Annotated[Optional[str], typer.Option(help="Only memories whose text contains this")] = None,
    current_only: Annotated[bool, typer.Option("--current-only", help="Hide superseded memories")] = False,
    limit: Annotated[Optional[int], typer.Option(help="At most this many", min=1)] = None,
    mind: MindOption = None,
    json_output: JsonOption = False,
) -> None:
    """List stored memories."""
    with Mind.open(mind) as opened:
        found = opened.memories(namespace=namespace, source=source, contains=contains,
                                include_superseded=not current_only, limit=limit)
    if json_output:
        _emit_json([m.to_dict() for m in found])
        return
    table = Table("id", "text", "source", "trust", "namespace", "status")
    for m in found:
        status = "current" if m.current else f"superseded by #{m.superseded_by}"
        if m.quarantined:
            status += ", quarantined"
        elif m.quarantine == PENDING:
            status += ", not yet checked"
        if m.no_train:
            status += ", never trained on"
        table.add_row(f"#{m.id}", m.text, m.source, m.trust, m.namespace, status)
    out.print(table if found else "no memories")


@app.command(context_settings={"ignore_unknown_options": True})  # so `forget -1` is read as an id, and refused as one
def forget(
    memory_id: Annotated[Optional[str], typer.Argument(help="Memory id (as shown by `lifelong memories`, e.g. 12 or #12)")] = None,
    source: Annotated[Optional[str], typer.Option(help="Forget every memory from this source")] = None,
    namespace: Annotated[Optional[str], typer.Option(help="Forget every memory in this namespace")] = None,
    contains: Annotated[Optional[str], typer.Option(help="Forget every memory whose text contains this")] = None,
    mind: MindOption = None,
    json_output: JsonOption = False,
) -> None:
    """Remove memories from the store, the retrieval indexes and every version: a module that
    learned one stops serving at once and loses its weights; `lifelong sleep` relearns the rest."""
    if memory_id is None and not (source or namespace or contains):  # usage mistakes: before the mind is opened
        raise InputError("name what to forget: a memory id, or --source, --namespace or --contains")
    if memory_id is not None:
        if source or namespace or contains:
            raise InputError("give a memory id or filters (--source, --namespace, --contains), not both")
        if not memory_id.lstrip("#").isdigit():
            raise InputError(f"'{memory_id}' is not a memory id; ids are positive numbers, see `lifelong memories`")
    with Mind.open(mind) as opened:
        if memory_id is not None:
            report = opened.forget_many([int(memory_id.lstrip("#"))])
        else:
            report = opened.forget_where(source=source, namespace=namespace, contains=contains)
    if json_output:
        _emit_json({**report.to_dict(), "texts": [m.text for m in report.forgotten]})
        return
    for memory in report.forgotten:
        out.print(f"forgot #{memory.id}: {memory.text}", soft_wrap=True, highlight=False)
    if report.learned_by:
        versions = "version" if len(report.learned_by) == 1 else "versions"
        out.print(f"{versions} {', '.join(report.learned_by)} had learned "
                  f"{'it' if len(report.forgotten) == 1 else 'them'}: those modules no longer serve and their weights are "
                  f"deleted; run `lifelong sleep` to relearn what else they held", soft_wrap=True, highlight=False)
    if report.merged:
        out.print(f"merged checkpoint(s) {', '.join(report.merged)} had folded {'it' if len(report.forgotten) == 1 else 'them'} "
                  f"into their weights: those weights are deleted"
                  + (f"; the active version is now {report.moved_to} (the newest one not built on them); run `lifelong sleep` "
                     f"to relearn what else they held" if report.moved_to else ""), soft_wrap=True, highlight=False)
    if report.proof:
        proof = report.proof
        out.print(f"proof: on {proof.probes} held-out probes about {'it' if len(report.forgotten) == 1 else 'them'}, the served "
                  f"model answered {proof.answered_before:.2f} before and {proof.answered_after:.2f} now (the base model: "
                  f"{proof.answered_by_base:.2f}); recorded in forget_proofs.jsonl", soft_wrap=True, highlight=False)


REFUSED_EXIT_CODE = 10  # the gate kept the candidate but did not activate it
NOTHING_CHANGED = ("interrupted by Ctrl-C; no version was made and the active one is unchanged (a {what} builds its "
                   "version in a temporary folder and only then activates it); run `lifelong {what}` again")


def _print_result(result: Any, json_output: bool) -> None:
    if json_output:
        topics = [{"message": t.message, "activated": t.activated, "version": t.manifest.id if t.manifest else None}
                  for t in result.topics]
        _emit_json({"message": result.message, "activated": result.activated,
                    "manifest": json.loads(result.manifest.to_json()) if result.manifest else None,
                    **({"topics": topics} if topics else {})})
    else:
        out.print(result.message, soft_wrap=True, highlight=False)
    if result.manifest is not None and not result.activated:
        raise typer.Exit(REFUSED_EXIT_CODE)


@app.command()
def sleep(
    strategy: Annotated[Optional[str], typer.Option(help="Strategy components joined with '+': " + ", ".join(KNOWN_STRATEGY_COMPONENTS) + " (default routed+context: one module per topic among the new memories, used only on inputs near its memories, trained to read retrieved notes)")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Passes over the synthesised data", min=1)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="New examples per optimizer step, replayed ones added in proportion (default 8 and 4; fewer: more steps from the same tokens)", min=1)] = None,
    answer_gradients_only: Annotated[Optional[bool], typer.Option("--answer-gradients-only/--all-gradients", help="LoRA weights take gradient from the answers' positions only, not the prompts': the prompts run once without gradients, only the scored positions forward and backward (training 1.26-1.4x faster; as many answers on 100 TOFU facts, SQuAD and the 10x10 study), or from every position [default: answers only for routed strategies]", show_default=False)] = None,
    layers: Annotated[Optional[int], typer.Option(help="Adapt only the last N decoder layers [default: all]", min=1)] = None,
    teacher_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible endpoint that writes extra training data, e.g. http://localhost:8000/v1")] = None,
    teacher_model: Annotated[Optional[str], typer.Option(help="Model name the teacher endpoint serves")] = None,
    precision: Annotated[str, typer.Option(help="Training precision: auto (bf16 autocast only where this CPU runs it faster), fp32 or bf16")] = "auto",
    questions_per_memory: Annotated[int, typer.Option(help="Questions the model writes about each fact for distillation (more: slower sleep, more ways of asking)", min=1)] = 1,
    content_cloze: Annotated[bool, typer.Option(help="Also train cloze and span questions over lower-case content phrases, not only names and numbers (for technical text; not yet measured on short facts)")] = False,
    recite: Annotated[bool, typer.Option(help="Answer span questions about a sentence of a long note (a passage's chunk) with the whole sentence, not the span; short notes are unaffected")] = True,
    context_distractors: Annotated[int, typer.Option(help="Most distractor notes beside the right one in each note-reading training row (fewer: shorter rows, a faster sleep)", min=1)] = 2,
    note_rows: Annotated[Optional[bool], typer.Option("--note-rows/--no-note-rows", help="Train rows that quote the memory among distractor notes, or only the distractor-only rows [default: only for unrouted strategies; a routed module steps aside when its note is quoted, and these rows are half of a sleep's trained tokens]", show_default=False)] = None,
    statement_prompts: Annotated[int, typer.Option(help="Topic prompts each fact's statement is trained under, 1 to 3 (fewer: a faster sleep)", min=1, max=3)] = 3,
    topic_modules: Annotated[Optional[bool], typer.Option("--topic-modules/--module-per-sleep", help="One module and gated version per topic among the new memories, so a later forget rebuilds only its topic's module (a gate per topic), or one module for the whole sleep [default: the mind's [training] modules; unset: per topic for routed strategies]", show_default=False)] = None,
    micro_batch_rows: Annotated[Optional[int], typer.Option(help="Packed rows per forward and backward pass, 0 for the whole batch (same gradient; fewer: less memory, slower; on a 3-fact fp32 sleep 1 row peaked at 1.6 against 2.9 GB for +6% training time, in bf16 2 rows -0.85 GB for +8%) [default: 1 when training runs in fp32, else the whole batch]", min=0)] = None,
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing", help="Recompute each layer's activations in the backward pass (same module, less memory, slower: 2.3 against 3.8 GB peak and +34% training time on a 3-fact sleep)")] = False,
    return_freed_memory: Annotated[bool, typer.Option("--return-freed-memory", help="Give each freed activation back to the system during training (glibc only; same module, less memory, slower: 2.9 against 3.8 GB peak and 2.4x the training time on a 3-fact sleep; 1.7 GB with --gradient-checkpointing too)")] = False,
    compile_layers: Annotated[bool, typer.Option("--compile", help="Train with torch.compile on the decoder layers (fused kernels; a compile before the first step, 1-2 minutes the first time on a machine and 16-18 s from the cache after on SmolLM2; on 2 epochs of a 10-fact sleep steps ran 1.28x faster, 1.11x with the cached compile; slower on small sleeps)")] = False,
    attention: Annotated[Optional[str], typer.Option(help="Attention kernel of the training loop: sdpa_fp32 (default: the fused kernel in fp32 inside bf16 autocast, 1.10-1.25x a training run and exacter, grouped keys kept unrepeated), sdpa_fp32_repeated_kv (the same through transformers' sdpa, which repeats them: more memory), sdpa (the model's own, in bf16 under autocast) or eager (plain matmuls); serving and the gate keep sdpa")] = None,
    mind: MindOption = None,
    json_output: JsonOption = False,
) -> None:
    """Consolidate new memories into a gated, versioned LoRA module (exit 10 if the gate refuses it)."""
    from dataclasses import replace

    from lifelong.consolidate import SleepConfig, trains_per_topic
    from lifelong.learn.strategies import parse_strategy
    from lifelong.learn.teacher import TeacherConfig

    config = SleepConfig(questions_per_memory=questions_per_memory, content_cloze=content_cloze, recite=recite,
                         context_distractors=context_distractors, topic_modules=topic_modules, note_rows=note_rows,
                         statement_prompts=statement_prompts)
    if strategy is not None:
        parse_strategy(strategy)
        config = replace(config, strategy=strategy)
    if epochs is not None:
        config = replace(config, train=replace(config.train, epochs=epochs))
    if layers is not None:
        config = replace(config, train=replace(config.train, trainable_layers=layers))
    if batch_size is not None:
        config = replace(config, train=config.train.with_batch_size(batch_size))
    if answer_gradients_only is not None:
        config = replace(config, train=replace(config.train, answer_gradients_only=answer_gradients_only))
    if micro_batch_rows is not None:
        config = replace(config, train=replace(config.train, micro_batch_rows=micro_batch_rows))
    if gradient_checkpointing:
        config = replace(config, train=replace(config.train, gradient_checkpointing=True))
    if return_freed_memory:
        config = replace(config, train=replace(config.train, return_freed_memory=True))
    if compile_layers:
        config = replace(config, train=replace(config.train, compile_layers=True))
    if attention is not None:
        config = replace(config, train=replace(config.train, attention=checked_attention(attention)))
    if precision not in ("auto", "fp32", "bf16"):
        raise InputError(f"--precision {precision!r} is not one of auto, fp32, bf16")
    if precision != "auto":
        config = replace(config, train=replace(config.train, bf16=precision == "bf16"))
    if bool(teacher_url) != bool(teacher_model):
        raise LifelongError("--teacher-url and --teacher-model go together; pass both, or neither")
    with Mind.open(mind) as opened:
        url = teacher_url or opened.config.teacher_url
        model = teacher_model or opened.config.teacher_model
        if url and model:
            from lifelong.learn.teacher import Teacher

            Teacher(TeacherConfig(url=url, model=model))  # a malformed URL fails before the model loads
            config = replace(config, teacher=TeacherConfig(url=url, model=model))
        from lifelong.learn import distributed

        bar = step_progress("training")
        try:
            result = opened.sleep(config, report=report_stage, progress=bar)
        except KeyboardInterrupt:
            if trains_per_topic(opened.sleep_config(config)):
                raise Interrupted("interrupted by Ctrl-C; the topics finished before it stay committed (active where their gate "
                                  "passed), the one in progress made no version; run `lifelong sleep` again to learn the rest") from None
            raise Interrupted(NOTHING_CHANGED.format(what="sleep")) from None
        finally:
            bar(-1, -1, 0.0)  # stop the bar even when training raised
            speaks = distributed.is_main()  # under torchrun, rank 0 speaks for the sleep
            distributed.stop()
    if speaks:
        _print_result(result, json_output)


@app.command()
def merge(mind: MindOption = None, json_output: JsonOption = False) -> None:
    """Fold the active module into a new base checkpoint (checked for NaN and by the gates first)."""
    with Mind.open(mind) as opened:
        try:
            result = opened.merge(report=report_stage)
        except KeyboardInterrupt:
            raise Interrupted(NOTHING_CHANGED.format(what="merge")) from None
    _print_result(result, json_output)


quarantine_app = typer.Typer(help="Memories held back by the poisoning checks: `quarantine` lists them, "
                                   "`quarantine approve ID` releases one, `quarantine reject ID` forgets it.",
                              invoke_without_command=True, no_args_is_help=False)
app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.callback()
def quarantine(ctx: typer.Context, mind: MindOption = None, json_output: JsonOption = False) -> None:
    """List quarantined memories: kept, never answered from nor trained on until approved."""
    if ctx.invoked_subcommand is not None:
        return
    with Mind.open(mind) as opened:
        held = opened.quarantined()
    if json_output:
        _emit_json([m.to_dict() for m in held])
        return
    if not held:
        out.print("nothing in quarantine")
    for memory in held:
        out.print(f"#{memory.id} [{memory.source}, {memory.trust}] {memory.text}\n    why: {memory.quarantine}",
                  soft_wrap=True, highlight=False, markup=False)


def _memory_id(raw: str) -> int:
    if not raw.lstrip("#").isdigit():
        raise InputError(f"'{raw}' is not a memory id; ids are positive numbers, see `lifelong quarantine`")
    return int(raw.lstrip("#"))


@quarantine_app.command("approve")
def quarantine_approve(memory_id: Annotated[str, typer.Argument(help="Id of a quarantined memory")],
                       mind: MindOption = None) -> None:
    """Release a quarantined memory: you vouch for it (an untrusted one becomes user trust), so
    answers and sleeps use it from now on."""
    number = _memory_id(memory_id)
    with Mind.open(mind) as opened:
        memory = opened.approve(number)
    out.print(f"approved #{memory.id} [{memory.source}, {memory.trust}]: {memory.text}", soft_wrap=True, highlight=False,
              markup=False)


@quarantine_app.command("reject")
def quarantine_reject(memory_id: Annotated[str, typer.Argument(help="Id of a quarantined memory")],
                      mind: MindOption = None) -> None:
    """Forget a quarantined memory."""
    number = _memory_id(memory_id)
    with Mind.open(mind) as opened:
        report = opened.reject(number)
    out.print(f"rejected and forgot #{report.forgotten[0].id}", highlight=False)


keys_app = typer.Typer(help="API keys of `lifelong serve`: `keys create TENANT` prints a new key (shown once), "
                             "`keys list` shows them, `keys revoke KEY|TENANT` ends them.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _server_root(mind: Optional[Path]) -> Path:
    from lifelong.mind_config import require_mind
    from lifelong.paths import mind_dir

    root = mind_dir(mind)
    require_mind(root)
    return root


@keys_app.command("create")
def keys_create(tenant: Annotated[str, typer.Argument(help="Tenant the key speaks for (lowercase letters, digits, - or _)")],
                mind: MindOption = None, json_output: JsonOption = False) -> None:
    """Make an API key for TENANT; each tenant has its own memories, quarantine, versions and modules."""
    from lifelong.serve.keys import KeyRing

    ring = KeyRing(_server_root(mind))
    try:
        key = ring.create(tenant)
    finally:
        ring.close()
    if json_output:
        _emit_json({"tenant": tenant, "key": key})
        return
    out.print(f"key for tenant {tenant} (shown once; the server keeps only its hash):\n{key}", highlight=False, markup=False)


@keys_app.command("list")
def keys_list(mind: MindOption = None, json_output: JsonOption = False) -> None:
    """List keys by id (the key's first characters), tenant, and whether revoked."""
    from lifelong.serve.keys import KeyRing

    ring = KeyRing(_server_root(mind))
    try:
        records = ring.list()
    finally:
        ring.close()
    if json_output:
        _emit_json([r.to_dict() for r in records])
        return
    table = Table("key id", "tenant", "created", "status")
    for r in records:
        table.add_row(r.key_id + "...", r.tenant, time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at)),
                      "revoked" if r.revoked_at else "live")
    out.print(table if records else "no keys; make one with `lifelong keys create TENANT`")


@keys_app.command("revoke")
def keys_revoke(key_or_tenant: Annotated[str, typer.Argument(help="A key (or its id from `keys list`), or a tenant: all its keys")],
                mind: MindOption = None) -> None:
    """Revoke a key, or every key of a tenant: their requests get 401 from then on."""
    from lifelong.serve.keys import KeyRing

    ring = KeyRing(_server_root(mind))
    try:
        revoked = ring.revoke(key_or_tenant)
    finally:
        ring.close()
    out.print(f"revoked {len(revoked)} key{'s' if len(revoked) != 1 else ''} of {', '.join(sorted({r.tenant for r in revoked}))}",
              highlight=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on", min=1, max=65535)] = 8000,
    batch_window_ms: Annotated[float, typer.Option(help="How long a request waits for others to share its batch", min=0.0, max=1000.0)] = 10.0,
    results: Annotated[Path, typer.Option(help="`lifelong bench` results folder whose latest plots the dashboard shows")] = Path("results"),
    upstream: Annotated[Optional[str], typer.Option(help="OpenAI-compatible base URL (e.g. vLLM's http://host:8000/v1) that generates the "
                                                         "answers; memory, retrieval and checks stay here (its key: LIFELONG_UPSTREAM_KEY)")] = None,
    upstream_model: Annotated[Optional[str], typer.Option(help="model name to ask the upstream for (default: the request's)")] = None,
    mind: MindOption = None,
) -> None:
    """Serve an OpenAI-compatible API (/v1/chat/completions, /v1/models, /v1/memories) over this
    mind's model, one mind per tenant (keys: `lifelong keys create TENANT`)."""
    import uvicorn

    from lifelong.serve.app import create_app

    root = _server_root(mind)
    out.print(f"serving {root} on http://{host}:{port} (OpenAI base URL http://{host}:{port}/v1)", highlight=False)
    out.print(f"dashboard: http://{host}:{port}/ (sign in with a key from `lifelong keys create TENANT`)", highlight=False)
    remote = None
    if upstream:
        from lifelong.serve.upstream import Upstream

        if not upstream.startswith(("http://", "https://")):
            raise InputError(f"--upstream {upstream!r} is not an http(s) URL; pass the server's base URL, e.g. http://127.0.0.1:8001/v1")
        remote = Upstream(upstream, upstream_model)
        out.print(f"answers are generated by {upstream}" + (f" ({upstream_model})" if upstream_model else ""), highlight=False)
    uvicorn.run(create_app(root, batch_window=batch_window_ms / 1000, results=results, upstream=remote), host=host, port=port,
                log_level="warning")


versions_app = typer.Typer(help="List the versions of this mind's model (lineage, metrics, verdict); `versions prune` deletes unused ones.",
                            invoke_without_command=True, no_args_is_help=False)
app.add_typer(versions_app, name="versions")


@versions_app.callback()
def versions(ctx: typer.Context, mind: MindOption = None, json_output: JsonOption = False) -> None:
    """List the versions of this mind's model: lineage, metrics, the gate's verdict, and which is active."""
    if ctx.invoked_subcommand is not None:
        return
    with Mind.open(mind) as opened:
        manifests, active = opened.versions.list(), opened.versions.active_id()
    if json_output:
        _emit_json({"active": active, "versions": [json.loads(m.to_json()) for m in manifests]})
        return
    out.print(_versions_table(manifests) if manifests else "no versions yet")
    out.print(f"active: {active}", highlight=False)
    for m in manifests:
        if not m.verdict.passed:
            out.print(f"{m.id} refused by the gate: {escape('; '.join(m.verdict.reasons) or 'no reason recorded')}",
                      highlight=False)


def _versions_table(manifests: list[Any]) -> Table:
    """Fits 80 columns with every header whole: no side borders, whole-word headers that never
    wrap, the creation time the only cell allowed to wrap, and the gate's reasons printed below
    the table instead of in a cell."""
    from datetime import datetime

    from rich import box

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=0)  # one space between columns
    widest = {"id": 3, "parent": 6, "kind": 6, "created": 10, "KL": 5, "gate": 7}  # widest usual cell, where wider than the header
    for header in ("id", "parent", "kind", "created", "memories", "acquired", "retained", "KL", "gate"):
        table.add_column(header, no_wrap=header != "created", min_width=max(len(header), widest.get(header, 0)))
    for m in manifests:
        metrics = m.metrics
        table.add_row(m.id, m.parent or "-", m.kind, datetime.fromtimestamp(m.created_at).strftime("%Y-%m-%d %H:%M"),
                      str(len(m.memory_ids)), _metric(metrics.get("acquisition")),
                      _metric(metrics.get("retention_agreement")), _metric(metrics.get("kl_drift"), 3),
                      "pass" if m.verdict.passed else "refused")
    return table


def _metric(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@versions_app.command("prune")
def versions_prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be deleted and freed; delete nothing")] = False,
    mind: MindOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete versions outside the active one's lineage (it, its parents, the merge it builds on)."""
    from lifelong.disk_usage import human
    from lifelong.mind_config import require_mind
    from lifelong.paths import mind_dir
    from lifelong.versions.prune import prune

    directory = mind_dir(mind)
    require_mind(directory)
    plan = prune(directory, dry_run=dry_run)
    if json_output:
        _emit_json(plan.to_dict())
        return
    table = Table("id", "kind", "size", "action")
    for version in plan.usage.versions:
        action = ("keep (active)" if version.active else "keep (lineage)") if version.in_lineage else (
            "would delete" if dry_run else "deleted")
        table.add_row(version.id, version.kind, human(version.bytes), action)
    if plan.usage.versions:
        out.print(table)
    if plan.usage.leftover_bytes:
        out.print(f"crash leftovers: {human(plan.usage.leftover_bytes)}, {'would be removed' if dry_run else 'removed'}")
    verb = "would free" if dry_run else "freed"
    out.print(f"active {plan.usage.active}; {len(plan.remove)} version(s) {'to delete' if dry_run else 'deleted'}; "
              f"{verb} {human(plan.frees_bytes)} of {human(plan.usage.total_bytes)}")


@app.command()
def du(mind: MindOption = None, json_output: JsonOption = False) -> None:
    """What this mind costs on disk: memory database, each version, total, and what prune would free."""
    from lifelong.disk_usage import human, measure
    from lifelong.mind_config import require_mind
    from lifelong.paths import mind_dir

    directory = mind_dir(mind)
    config = require_mind(directory)
    usage = measure(directory)
    if json_output:
        _emit_json(usage.to_dict())
        return
    table = Table("part", "kind", "size", "prune")
    if config.store_url:  # the server's disk, not this directory's
        table.add_row(f"PostgreSQL schema {config.store_schema}", "memories", "on the server", "keeps")
    else:
        table.add_row("memory.db", "memories", human(usage.memory_bytes), "keeps")
    for version in usage.versions:
        table.add_row(version.id + (" (active)" if version.active else ""), version.kind, human(version.bytes),
                      "keeps" if version.in_lineage else "deletes")
    if usage.leftover_bytes:
        table.add_row("crash leftovers", "-", human(usage.leftover_bytes), "deletes")
    table.add_row("other", "config, audit log, probes", human(usage.other_bytes), "keeps")
    table.add_row("[bold]total[/bold]", "", f"[bold]{human(usage.total_bytes)}[/bold]", "")
    out.print(table)
    out.print(f"`lifelong versions prune` would free {human(usage.prunable_bytes)}; "
              "converted models in the shared cache are not counted")


AUDIT_BROKEN_EXIT_CODE = 7  # `audit --verify` found the log altered


@app.command()
def audit(
    verify: Annotated[bool, typer.Option("--verify", help="Check the hash chain: exit 7 if a line was removed, inserted or edited")] = False,
    last: Annotated[int, typer.Option(help="Show only the last N records (0: all)", min=0)] = 20,
    mind: MindOption = None,
    json_output: JsonOption = False,
) -> None:
    """Who changed this mind and how: every learn, forget, sleep, promotion, rollback and merge."""
    from datetime import datetime

    from lifelong.mind_config import require_mind
    from lifelong.paths import mind_dir
    from lifelong.versions.audit import AuditLog

    directory = mind_dir(mind)
    require_mind(directory)
    log = AuditLog(directory / "audit.jsonl")
    if verify:
        result = log.verify()
        if json_output:
            _emit_json({"lines": result.lines, "legacy_lines": result.legacy, "intact": result.intact, "problems": result.problems})
        elif result.intact:
            out.print(f"audit log intact: {result.lines} lines, chain unbroken"
                      + (f" ({result.legacy} older lines before the chain began)" if result.legacy else ""))
        else:
            for problem in result.problems:
                typer.echo(f"error: {problem}", err=True)
        if not result.intact:
            raise typer.Exit(AUDIT_BROKEN_EXIT_CODE)
        return
    records = log.records()
    shown = records[-last:] if last else records
    if json_output:
        _emit_json(shown)
        return
    table = Table("time", "actor", "event", "version", "details")
    for record in shown:
        details = {k: v for k, v in record.items() if k not in ("time", "actor", "event", "version", "prev")}
        table.add_row(datetime.fromtimestamp(record["time"]).strftime("%Y-%m-%d %H:%M:%S"), str(record.get("actor", "-")),
                      record["event"], str(record.get("version", "-")), json.dumps(details)[:120])
    out.print(table)
    if last and len(records) > last:
        out.print(f"{len(records) - last} earlier records not shown (--last 0 shows all)")


@app.command()
def backup(
    dest: Annotated[Path, typer.Argument(help="New folder for the backup (must not exist, or be empty)")],
    mind: MindOption = None,
    json_output: JsonOption = False,
) -> None:
    """Copy this mind consistently, even while other commands use it (the backup is itself a mind folder)."""
    from lifelong.backup import backup as backup_mind
    from lifelong.disk_usage import human
    from lifelong.paths import mind_dir

    report = backup_mind(mind_dir(mind), dest)
    if json_output:
        _emit_json(report.to_dict())
        return
    out.print(f"backed up {report.memories} memories and {len(report.versions)} version(s) (active {report.active}), "
              f"{human(report.bytes)}, to {report.target}")


@app.command()
def migrate(
    to: Annotated[str, typer.Option("--to", help="postgresql://USER@HOST/DB to move this mind's memories to")],
    schema: Annotated[Optional[str], typer.Option(help="Schema for this mind [default: lifelong_<directory name>]")] = None,
    mind: MindOption = None,
    json_output: JsonOption = False,
) -> None:
    """Move this mind's memories from memory.db into PostgreSQL + pgvector, verified row by row."""
    from lifelong.migrate import migrate_to_postgres
    from lifelong.paths import mind_dir

    report = migrate_to_postgres(mind_dir(mind), to, schema)
    if json_output:
        _emit_json(report.to_dict())
        return
    out.print(f"{'verified an earlier copy of' if report.resumed else 'copied and verified'} {report.memories} memories and "
              f"{report.forgotten} tombstones into schema {report.schema}; the mind now uses PostgreSQL "
              f"(memory.db kept as {report.kept_file}: delete it once you no longer need the way back; forget does not reach it)")


@app.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A folder written by `lifelong backup` (or another mind)")],
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty --mind; its contents are kept beside it")] = False,
    mind: MindOption = None,
    json_output: JsonOption = False,
) -> None:
    """Make --mind a copy of a backup; refuses a non-empty mind unless --force."""
    from lifelong.backup import restore as restore_mind
    from lifelong.disk_usage import human
    from lifelong.paths import mind_dir

    report = restore_mind(source, mind_dir(mind), force=force)
    if json_output:
        _emit_json(report.to_dict())
        return
    out.print(f"restored {report.memories} memories and {len(report.versions)} version(s) (active {report.active}), "
              f"{human(report.bytes)}, into {report.target}")
    if report.replaced:
        out.print(f"the mind that was there is kept at {report.replaced}; delete it when you no longer need it")


@app.command()
def show(
    version: Annotated[str, typer.Argument(help="Version id (see `lifelong versions`) or 'base'")],
    mind: MindOption = None,
    json_output: JsonOption = False,
) -> None:
    """Everything recorded about one version: lineage, memories, data, hyperparameters, metrics, verdict."""
    with Mind.open(mind) as opened:
        if version == BASE_VERSION:
            _show_base(opened, json_output)
            return
        manifest = opened.show(version)
        memories = {m.id: m for m in opened.memories()}
        from lifelong.unlearn import weights_deleted

        deleted = weights_deleted(opened.versions, manifest)
    if json_output:
        _emit_json({**json.loads(manifest.to_json()), "weights_deleted_for_forgotten": deleted})
        return
    out.print(f"[bold]{manifest.id}[/bold] ({manifest.kind}) parent {manifest.parent}, base model {manifest.base_model}")
    if deleted:
        out.print(f"[yellow]its module was deleted when {', '.join(f'#{i}' for i in deleted)} "
                  f"{'was' if len(deleted) == 1 else 'were'} forgotten; it no longer serves[/yellow]")
    out.print(f"verdict: {'pass' if manifest.verdict.passed else 'fail'}" + "".join(f"\n  - {escape(r)}" for r in manifest.verdict.reasons))
    table = Table("metric", "value")
    for key, value in sorted(manifest.metrics.items()):
        table.add_row(key, _metric_text(value))
    out.print(table)
    out.print("hyperparameters: " + escape(json.dumps(manifest.hyperparameters, sort_keys=True)))
    out.print(f"synthetic data: {', '.join(manifest.data_sources) or '-'} (sha256 {manifest.synthetic_data_hash[:12]})")
    out.print(f"memories consolidated ({len(manifest.memory_ids)}):")
    for memory_id in manifest.memory_ids:
        text = memories[memory_id].text if memory_id in memories else "(forgotten)"
        out.print(f"  #{memory_id} {escape(text[:100])}")


def _metric_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):  # e.g. stage_seconds: {"select": 1.2, "synthesis": 30.5, ...}
        return ", ".join(f"{key} {_metric_text(each)}" for key, each in value.items())
    return str(value)


@app.command()
def export(
    version: Annotated[str, typer.Argument(help="Version id (see `lifelong versions`)")],
    folder: Annotated[Path, typer.Argument(help="New folder to write (must not exist or be empty)")],
    merged: Annotated[bool, typer.Option("--merged", help="Also write the base with the modules folded in (safetensors); "
                                                          "a routed library's router does not survive this")] = False,
    base: Annotated[bool, typer.Option("--base/--no-base", help="Write the weights the adapters apply to (base/)")] = True,
    mind: MindOption = None,
    json_output: JsonOption = False,
) -> None:
    """Write a version as standard PEFT adapters for other engines (vLLM, peft): adapters/<module>/,
    base/, merged/ with --merged, manifest.json. Modules that learned forgotten memories stay behind."""
    with Mind.open(mind) as opened, status(f"exporting {version}"):
        report = opened.export(version, folder, merged=merged, base=base)
    if json_output:
        _emit_json(report.to_dict())
        return
    out.print(f"exported {version} to {escape(str(folder))}: {_count(len(report.adapters), 'adapter', 'adapters')}"
              + (", base weights" if report.base else "") + (", merged weights" if report.merged else ""))
    if report.left_out:
        out.print(f"[yellow]left out {', '.join(report.left_out)}: they learned memories since forgotten or superseded[/yellow]")
    if report.adapters:
        modules = " ".join(f"{name}={path.resolve()}" for name, path in report.adapters.items())
        model = report.base.resolve() if report.base else "BASE_MODEL_FOLDER"
        out.print(f"serve with vLLM: vllm serve {model} --enable-lora --max-lora-rank 16 --lora-modules {escape(modules)}")
        if report.routed:
            out.print("a routed library: vLLM serves each module by name; lifelong's own server chooses the module per request")


def _show_base(opened: Mind, json_output: bool) -> None:
    """'base' has no manifest (nothing was trained), but diff and rollback accept it, so show
    says what it is: the mind's model as loaded, with no module and no memories consolidated."""
    active = opened.versions.active_id() == BASE_VERSION
    if json_output:
        _emit_json({"id": BASE_VERSION, "kind": "base", "parent": None, "base_model": opened.config.model,
                    "memory_ids": [], "active": active})
        return
    out.print(f"[bold]{BASE_VERSION}[/bold] the model {escape(opened.config.model)} as loaded: no module, no memories "
              f"consolidated{' (active)' if active else ''}", soft_wrap=True)
    out.print("answers still use memory retrieval; `lifelong rollback base` makes it active")


@app.command()
def diff(
    old: Annotated[str, typer.Argument(help="Earlier version id, or 'base'")],
    new: Annotated[str, typer.Argument(help="Later version id")],
    mind: MindOption = None,
    json_output: JsonOption = False,
) -> None:
    """What changed between two versions: memories added or removed, and metric deltas."""
    with Mind.open(mind) as opened:
        change = opened.diff(old, new)
    if json_output:
        _emit_json(change.to_dict())
        return
    out.print(f"[bold]{old} -> {new}[/bold]: {len(change.added)} memories added, {len(change.removed)} removed")
    for memory in change.added:
        out.print(f"  + #{memory.id} {escape(memory.text[:100])}")
    for memory_id in change.removed:
        out.print(f"  - #{memory_id}")
    if change.metric_deltas:
        table = Table("metric", "change")
        for key, delta in change.metric_deltas.items():
            table.add_row(key, f"{delta:+.4g}")
        out.print(table)


@app.command()
def rollback(
    version: Annotated[str, typer.Argument(help="Version id (see `lifelong versions`) or 'base'")],
    force: Annotated[bool, typer.Option("--force", help="Activate a version even though the gate refused it")] = False,
    mind: MindOption = None,
) -> None:
    """Make an earlier version active again; nothing is deleted. A gate-refused version needs --force."""
    with Mind.open(mind) as opened:
        opened.rollback(version, force=force)
    out.print(f"active version: {version}")


@app.command("config")
def config_command(
    model: Annotated[Optional[str], typer.Option("--model", help="Make this model the mind's base: a packaged name, a local "
                                                "folder or .gguf file, or a hub id (refused while a trained version is active)")] = None,
    mind: MindOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show this mind's configuration (model, embedder, teacher), or change its model with --model."""
    with Mind.open(mind) as opened:
        before = opened.config.model
        settings = opened.set_model(model) if model is not None else opened.config
    if json_output:
        _emit_json({"model": settings.model, "embedder": settings.embedder,
                    "teacher": {"url": settings.teacher_url, "model": settings.teacher_model} if settings.teacher_url else None})
        return
    if model is not None:
        out.print(f"model changed from {before} to {settings.model}" if settings.model != before else f"model is already {before}",
                  highlight=False)
        return
    teacher = f"{settings.teacher_model} at {settings.teacher_url}" if settings.teacher_url else "none"
    out.print(f"model: {settings.model}\nembedder: {settings.embedder}\nteacher: {teacher}", highlight=False)


@app.command()
def demo(
    mind: MindOption = None,
    model: ModelOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the model failing on facts it cannot know, then answering them from memory."""
    from lifelong.demo import DEMO_FACTS, run_demo

    directory = mind or Path(tempfile.mkdtemp(prefix="lifelong-demo-"))
    intro = f"[bold]lifelong demo[/bold]: {len(DEMO_FACTS)} fictitious facts no model can know; mind at {directory}"
    (progress_console() if json_output else out).print(intro)
    with Mind.init(directory, model=model or DEFAULT_MODEL) as opened:
        rows = run_demo(opened)
    if json_output:
        _emit_json([{**row.__dict__, "correct_before": row.correct_before, "correct_after": row.correct_after} for row in rows])
        return
    table = Table("question", "before (model alone)", "after (with memory)", "cited", show_lines=True)
    for row in rows:
        mark_before = "[green]✓[/green]" if row.correct_before else "[red]✗[/red]"
        mark_after = "[green]✓[/green]" if row.correct_after else "[red]✗[/red]"
        table.add_row(row.question, f"{mark_before} {row.before}", f"{mark_after} {row.after}",
                      ", ".join(f"#{i}" for i in row.citations) or "-")
    out.print(table)
    before = sum(r.correct_before for r in rows)
    after = sum(r.correct_after for r in rows)
    out.print(f"correct before learning: {before}/{len(rows)}; after learning into memory: {after}/{len(rows)}")
    out.print(f"try it yourself: lifelong ask --mind {directory} \"{rows[0].question}\"")


BENCH_HELP = (
    "Run benchmark studies side by side (base, memory, naive fine-tune, lifelong, lifelong + memory) and write "
    "results/<study>/<timestamp>/ with results.json, PNG plots and report.md. Studies, in order, or all. "
    "Full runs on SmolLM2-135M, 2 CPU cores: " + "; ".join(f"{name} {time}" for name, time in EXPECTED_FULL_RUN.items())
    + ". --quick runs every study on a tiny random model in a few minutes."
)


@app.command(help=BENCH_HELP)
def bench(
    studies: Annotated[list[str], typer.Argument(help="studies to run, in order, or 'all'")],
    quick: Annotated[bool, typer.Option(help="tiny random model and tiny sizes: checks the harness end to end")] = False,
    data: Annotated[Path, typer.Option(help="folder with the benchmark JSONL files")] = Path("../shared/data"),
    passages_file: Annotated[Optional[Path], typer.Option("--passages-file", help="SQuAD-shaped JSONL to use instead of the default passages")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="results root; each study writes <out>/<study>/<timestamp>/")] = Path("results"),
    facts: Annotated[Optional[int], typer.Option(help="TOFU facts for acquisition-facts and retention (full: 100)", min=1)] = None,
    passages: Annotated[Optional[int], typer.Option(help="SQuAD passages (full: 50)", min=1)] = None,
    implication_passages: Annotated[Optional[int], typer.Option(help="passages with teacher implications (full: 50)", min=1)] = None,
    squad_modes: Annotated[str, typer.Option(help="comma-separated: many, single, implications (both its units), "
                                                     "implications-passage, implications-extra (one unit each)")] = "many,single,implications",
    sleeps: Annotated[Optional[int], typer.Option(help="sequential: number of sleeps (full: 10)", min=1)] = None,
    batch_facts: Annotated[Optional[int], typer.Option(help="sequential: facts per sleep (full: 10)", min=1)] = None,
    cost_facts: Annotated[Optional[int], typer.Option(help="cost: facts whose synthesised data is timed (full: 15)", min=1)] = None,
    known: Annotated[Optional[int], typer.Option(help="retention: known cloze facts screened for those the base gets right (full: 500)", min=1)] = None,
    citation_questions: Annotated[Optional[int], typer.Option(help="citations: TOFU questions asked (full: all 300)", min=1)] = None,
    strategies: Annotated[str, typer.Option(help="lifelong strategies (" + ", ".join(KNOWN_STRATEGY_COMPONENTS) + "; '+' combines); the first is the "
                                                 "lifelong arm of every study and the one served with memory, each other adds "
                                                 "a lifelong arm (one more sleep per unit) to every study but retrieval: by default the routed library and an unrouted module side by side")] = "routed+context,kl+replay",
    epochs: Annotated[Optional[int], typer.Option(help="training epochs for every trained arm", min=1)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="new examples per optimizer step of every trained arm, replayed ones added in proportion (default 8 and 4)", min=1)] = None,
    answer_gradients_only: Annotated[Optional[bool], typer.Option("--answer-gradients-only/--all-gradients", help="every lifelong sleep's LoRA weights take gradient from the answers' positions only, not the prompts' (prompts run once without gradients), or from every position [default: as `sleep`, answers only for routed strategies]", show_default=False)] = None,
    learning_rate: Annotated[Optional[float], typer.Option("--learning-rate", help="AdamW learning rate of every trained arm, the naive baseline's included (default 1e-3)")] = None,
    layers: Annotated[Optional[int], typer.Option("--layers", help="LoRA on the last N decoder layers of every trained arm, the naive baseline's included (default: all)", min=1)] = None,
    questions_per_memory: Annotated[Optional[int], typer.Option(help="questions the model writes per fact in every lifelong sleep (default 1)", min=1)] = None,
    content_cloze: Annotated[Optional[bool], typer.Option("--content-cloze", help="every lifelong sleep also trains cloze and span questions over lower-case content phrases (default off)")] = None,
    recite: Annotated[Optional[bool], typer.Option("--recite/--no-recite", help="every lifelong sleep answers span questions about a sentence of a long note with the whole sentence (default on; --no-recite: the span, as before)")] = None,
    context_distractors: Annotated[Optional[int], typer.Option(help="most distractor notes beside the right one in each note-reading row of every lifelong sleep (default 2)", min=1)] = None,
    note_rows: Annotated[Optional[bool], typer.Option("--note-rows/--no-note-rows", help="every lifelong sleep trains rows quoting the memory among distractors, or only the distractor-only rows [default: only for unrouted strategies, as `sleep`]", show_default=False)] = None,
    statement_prompts: Annotated[Optional[int], typer.Option(help="topic prompts each fact's statement is trained under in every lifelong sleep, 1 to 3 (default 3)", min=1, max=3)] = None,
    topic_modules: Annotated[Optional[bool], typer.Option("--topic-modules/--module-per-sleep", help="every lifelong sleep trains one module per topic among its new memories, or one for the whole sleep (as every run before 2026-12-05) [default: per topic for routed strategies]", show_default=False)] = None,
    attention: Annotated[Optional[str], typer.Option(help="attention kernel of every trained arm's training loop: sdpa_fp32 (default), sdpa_fp32_repeated_kv, sdpa or eager")] = None,
    forget_unit: Annotated[Optional[str], typer.Option("--forget-unit", help="governance: forget all the study taught about one author (author, the default, as TOFU's forget sets) or the first facts of the file, whose author keeps others (first)")] = None,
    seed: Annotated[int, typer.Option(help="seed of every trained arm", min=0)] = 0,
    model: Annotated[Optional[str], typer.Option(help="model to benchmark (default smollm2-135m; tiny with --quick)")] = None,
    resume: Annotated[bool, typer.Option(help="reuse the finished units (SQuAD modes, single passages) of a run with "
                                              "the same settings that was cut short")] = False,
    keep_minds: Annotated[Optional[Path], typer.Option("--keep-minds", help="keep the minds the arms train in this new or empty "
                                                                            "folder (default: a temporary folder, deleted after the run)")] = None,
    reuse_minds: Annotated[bool, typer.Option("--reuse-minds", help="with --keep-minds DIR of an earlier run: acquisition-facts, "
                                                                    "retention and acquisition-squad single passages score the lifelong "
                                                                    "modules it kept (same strategy, same memories) instead of sleeping again")] = False,
) -> None:
    from lifelong.bench.context import BenchSettings
    from lifelong.bench.runner import run_bench, study_names

    names = study_names() if studies == ["all"] else studies
    given = {k: v for k, v in dict(facts=facts, passages=passages, implication_passages=implication_passages, sleeps=sleeps,
                                    batch_facts=batch_facts, cost_facts=cost_facts, known=known,
                                    citation_questions=citation_questions, epochs=epochs, batch_size=batch_size, answer_gradients_only=answer_gradients_only, learning_rate=learning_rate, trainable_layers=layers,
                                    questions_per_memory=questions_per_memory, content_cloze=content_cloze,
                                    recite=recite, context_distractors=context_distractors, topic_modules=topic_modules,
                                    note_rows=note_rows, statement_prompts=statement_prompts, forget_unit=forget_unit, model=model,
                                    attention=None if attention is None else checked_attention(attention)).items() if v is not None}
    given.update(seed=seed, strategies=tuple(s.strip() for s in strategies.split(",") if s.strip()),
                 squad_modes=tuple(m.strip() for m in squad_modes.split(",") if m.strip()))
    settings = BenchSettings.quick(**given) if quick else BenchSettings(**given)
    written = run_bench(names, settings, data, out_dir, passages_file, resume, keep_minds, reuse_minds)
    for name, folder in written.items():
        out.print(f"{name}: {folder}")


def checked_attention(name: str) -> str:
    """`--attention` as given, or an actionable error before any model loads."""
    from lifelong.learn.training_attention import TRAINING_ATTENTION_KERNELS

    if name not in TRAINING_ATTENTION_KERNELS:
        raise InputError(f"--attention {name!r} is not one of {', '.join(TRAINING_ATTENTION_KERNELS)}")
    return name


INTERRUPTED_EXIT_CODE = 130  # the shell's code for a process ended by SIGINT


def _fail(message: str, code: int) -> None:
    """Print one error line on stderr and exit: a user reads one line, not a traceback."""
    flat = " ".join(message.split())
    Console(stderr=True).print(f"[red]error:[/red] {escape(flat)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def usage_error_line(exc: typer.TyperException) -> str:
    """A click usage error as one line that names the problem and where the fix is documented.

    typer raises its own vendored click classes (not subclasses of `click.ClickException`), so
    they are recognised through their public base, `typer.TyperException`.
    """
    problem = " ".join(exc.format_message().split()).rstrip(".")
    problem = problem[:1].lower() + problem[1:]
    context = getattr(exc, "ctx", None)
    command = getattr(context, "command_path", None) or "lifelong"
    return f"{problem}; see `{command} --help`"


def main() -> None:
    """Entry point: run the app, turning every error a user can act on into one line and an exit code."""
    try:
        code = app(standalone_mode=False, prog_name="lifelong")
    except LifelongError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.TyperException as exc:  # usage errors: bad option, missing argument, unknown command
        if not exc.format_message().strip():
            sys.exit(0)  # `lifelong` alone: typer has printed the help itself, and that is all that was asked
        _fail(usage_error_line(exc), getattr(exc, "exit_code", 2) or 2)
    except typer.Abort:  # end of input at a prompt
        _fail("aborted; nothing more was done", 1)
    else:
        if code == INTERRUPTED_EXIT_CODE:  # typer turns Ctrl-C into this exit code
            _fail("interrupted by Ctrl-C; run the command again to finish it", INTERRUPTED_EXIT_CODE)
        if isinstance(code, int) and code:
            sys.exit(code)  # typer.Exit(code) returns here when click does not exit itself


# Commands that train (or may, as a server's tenants sleep) run under tcmalloc where the machine
# has it: a third less peak memory in the same time (lifelong/process_allocator.py).
ALLOCATOR_HEAVY_COMMANDS = frozenset({"sleep", "demo", "bench", "serve"})


def entry_point() -> None:
    """The `lifelong` program: `main`, re-executed first under tcmalloc for the commands that
    train. `main` itself never re-executes, so it can run in a test's or a notebook's process."""
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    if command in ALLOCATOR_HEAVY_COMMANDS:
        from lifelong.process_allocator import reexecute_under_tcmalloc

        reexecute_under_tcmalloc()
    main()


if __name__ == "__main__":
    entry_point()
