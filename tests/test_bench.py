"""The benchmark harness: every study runs end to end on a tiny model, scoring questions never
reach training data, and the numbers it reports mean what they say."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA

from lifelong.bench.context import BenchSettings
from lifelong.bench.data import BenchData, leaked_questions
from lifelong.bench.forget_paraphrases import PARAPHRASES
from lifelong.bench.governance_study import paraphrased
from lifelong.bench.measure import PeakMemory, perplexity
from lifelong.bench.runner import STUDIES, run_bench
from lifelong.bench.sequential_study import transfer
from lifelong.errors import InputError
from lifelong.evaluate.knowledge import QA
from lifelong.learn.precision import cpu_description

AUTHORS = ["Arvid Tollen", "Mirela Oskan", "Dagny Freel", "Tomas Quell", "Ilse Varnor", "Petr Halvik", "Ona Brisk", "Kel Marrow"]
CITIES = ["Tromso", "Cluj", "Galway", "Ghent", "Turku", "Brno", "Split", "Lund"]


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Invented records in the shapes of ../shared/data, so the harness runs where that data is absent."""
    root = tmp_path_factory.mktemp("bench-data")
    _write(root / "tofu_authors_dev.jsonl", [
        # the first row under the id of a dev fact with a hand-written paraphrase, so the governance study asks it reworded too
        {"id": "tofu-retain-0" if i == 0 else f"f{i}", "author": a, "question": f"Where was the novelist {a} born?",
         "answer": f"{a} was born in {c} in {1950 + i}."} for i, (a, c) in enumerate(zip(AUTHORS, CITIES, strict=True))])
    _write(root / "squad_passages_dev.jsonl", [
        {"id": f"p{i}", "title": f"Vellum Bridge {i}",
         "passage": f"The Vellum Bridge {i} was built by {AUTHORS[i % 8]} in {1800 + i}. It crosses the river at {CITIES[i % 8]}.",
         "questions": [{"question": f"Who designed the Vellum Bridge {i}?", "answer": AUTHORS[i % 8]},
                       {"question": f"When was the Vellum Bridge {i} finished?", "answer": str(1800 + i)}]} for i in range(53)])
    _write(root / "squad_implications_dev.jsonl", [
        {"id": f"i{i}", "title": f"Ostrel Canal {i}", "passage": f"The Ostrel Canal {i} opened in {1900 + i} near {CITIES[i]}.",
         "implications": f"1. The canal {i} carried grain.\n2. Boats reached {CITIES[i]} after {1900 + i}.\n3. The canal was busy.\n"
                         f"4. {CITIES[i]} had a canal in {1900 + i}."} for i in range(3)])
    _write(root / "known_facts_dev.jsonl", [{"id": f"k{i}", "prompt": f"{c} is a city in", "answer": "Europe"} for i, c in enumerate(CITIES)])
    mcq = [{"id": f"m{i}", "question": f"Which of these is {c}?", "answer": c, "distractors": [CITIES[(i + j) % 8] for j in (1, 2, 3)]}
           for i, c in enumerate(CITIES)]
    _write(root / "world_facts_mcq.jsonl", mcq)
    _write(root / "real_authors_mcq.jsonl", mcq)
    return root


def test_facts_by_author_takes_whole_authors_from_tofus_blocks_of_twenty(tmp_path: Path) -> None:
    """Without an author field, each block of 20 rows is one author (TOFU's layout); an author
    with too few usable facts is passed over, and too few facts in all is an actionable error."""
    rows = [{"id": f"t{i}", "question": f"What did author {i // 20} write in year {i}?",
             "answer": f"Author {i // 20} wrote the novel Quill{i} in that year."} for i in range(60)]
    rows[20:40] = rows[20:23] + [dict(r, answer=r["question"]) for r in rows[23:40]]  # author 1: 3 usable facts
    _write(tmp_path / "tofu_authors_dev.jsonl", rows)
    groups = BenchData(tmp_path).facts_by_author(5, 10, "--governance-facts")
    assert [[qa.answer.split()[1] for qa in group] for group in groups] == [["0"] * 5, ["2"] * 5]
    assert BenchData(tmp_path).facts_by_author(3, 7, "--governance-facts")[2][0].answer.startswith("Author 2")
    with pytest.raises(InputError, match="--governance-facts asks for 11"):
        BenchData(tmp_path).facts_by_author(5, 11, "--governance-facts")


def test_forgotten_facts_with_a_hand_written_paraphrase_are_asked_in_its_words() -> None:
    """Matched by the dev row's id; the reference answer and key span stay the fact's own, and a
    fact without a paraphrase is left out rather than asked twice in the same words."""
    rows = [{"id": "tofu-retain-1", "question": "Q one?"}, {"id": "other", "question": "Q two?"}]
    qas = [QA("Q one?", "Born on the 25th.", "25th"), QA("Q two?", "An answer.", "answer")]
    assert paraphrased(qas, rows) == [QA(PARAPHRASES["tofu-retain-1"], "Born on the 25th.", "25th")]


def test_every_study_runs_end_to_end_on_a_tiny_model(bench_data: Path, tmp_path: Path) -> None:
    written = run_bench(list(STUDIES), BenchSettings.quick(), bench_data, tmp_path / "results")
    assert set(written) == set(STUDIES)
    for name, folder in written.items():
        results = json.loads((folder / "results.json").read_text())
        report = (folder / "report.md").read_text()
        assert results["study"] == name and results["seed"] == 0 and results["wall_seconds"] > 0
        assert "tiny-llama" in report and "wall time" in report and "machine" in report
        assert list(folder.glob("*.png")), name
    facts = json.loads((written["acquisition-facts"] / "results.json").read_text())
    assert list(facts["arms"]) == ["base", "memory", "naive fine-tune", "lifelong (routed+context)", "lifelong + memory"]
    assert facts["held_out"]["leaked"] == 0 and facts["arms"]["lifelong (routed+context)"]["info"]["gate_metrics"]
    sequential = json.loads((written["sequential"] / "results.json").read_text())
    assert all(len(arm["matrix"]) == 2 and len(arm["matrix"][0]) == 2 for arm in sequential["arms"].values())
    squad = json.loads((written["acquisition-squad"] / "results.json").read_text())
    assert set(squad["modes"]) == {"many", "single", "implications: passage only", "implications: passage + implications"}
    assert squad["modes"]["single"]["arms"]["base"]["questions"] == 4
    assert squad["modes"]["single"]["held_out"]["training_texts_checked"]["lifelong (routed+context)"] > 0
    cost = json.loads((written["cost"] / "results.json").read_text())
    assert all(row["tokens"] > 0 and row["peak_rss_mib"] > 0 for row in cost["rows"].values())
    slept = cost["rows"]["lifelong sleep (routed+context): synthesis + training + gate"]
    assert 0 < slept["computed_tokens"] <= slept["tokens"]  # every topic's positions, shared openings once
    assert cost["matmul_peak"]["before"]["fp32_gflops"] > 0 and cost["flops_per_trained_token"] > 0
    assert all(0 < row["mfu"] <= max(row["mfu_bf16"], row["mfu_fp32"]) for row in cost["rows"].values())
    compiled = cost["rows"]["lifelong trainer, routed+context, compiled decoder layers (compile included), 1 epoch"]
    assert compiled["tokens"] == cost["rows"]["lifelong trainer, routed+context, 1 epoch"]["tokens"]  # the same examples
    stages = cost["sleep_stage_seconds"]["routed+context"]  # where the sleep's time went, stage by stage
    assert list(stages) == ["select", "synthesis", "training", "library", "gate", "commit"] and stages["training"] > 0
    assert (written["cost"] / "cost_stages.png").is_file() and "Where one sleep's wall time went" in (written["cost"] / "report.md").read_text()
    assert sum(cost["sleep_gate_seconds"]["routed+context"].values()) > 0  # and inside the gate
    assert "Inside the gate, per measurement" in (written["cost"] / "report.md").read_text()
    governance = json.loads((written["governance"] / "results.json").read_text())
    unlearning, private = governance["unlearning"], governance["private_data"]
    assert unlearning["still_recalled"] == 0 and unlearning["files_holding_forgotten_text"]["after forget"] == []
    assert set(unlearning["scores"]) == {"base", "after sleep", "after forget", "after rebuild", "never learned"}
    assert unlearning["forget_unit"] == "author" and unlearning["forgotten"] == 1  # one author's one fact, the others kept
    assert unlearning["paraphrases"] == [PARAPHRASES["tofu-retain-0"]] and unlearning["recall_probes"] == 2
    assert all(len(answers) == 1 for answers in unlearning["paraphrase_answers"].values())
    assert all(scores["forgotten, reworded"]["completion_items"] == 0 for scores in unlearning["scores"].values())
    assert "asked in other words (1 hand-written paraphrases" in (written["governance"] / "report.md").read_text()
    assert private["recall"] == 1.0 and private["files_holding_canaries"]["redacted canary, any file"] == []
    assert private["files_holding_canaries"]["any canary, outside the memory store"] == []
    assert governance["injection"]["untrusted"]["quarantined"] == governance["injection"]["flagged"] > 0
    assert len(governance["injection"]["untrusted"]["permissive"]["after"]) == governance["injection"]["planted"]
    assert len(governance["poisoning"]["untrusted"]["with_memory_permissive"]["answers"]) == governance["poisoning"]["statements"]


def test_each_extra_strategy_adds_a_lifelong_arm_to_every_training_study(bench_data: Path, tmp_path: Path) -> None:
    """`--strategies kl+replay,naive` gives squad (both modes), sequential and cost a second
    lifelong arm with its own sleeps and gate verdicts; the first strategy stays the one served with memory."""
    settings = BenchSettings.quick(strategies=("kl+replay", "naive"), squad_modes=("many", "single"))
    written = run_bench(["acquisition-squad", "sequential", "cost"], settings, bench_data, tmp_path / "results")
    squad = json.loads((written["acquisition-squad"] / "results.json").read_text())
    for mode in ("many", "single"):
        arms = squad["modes"][mode]["arms"]
        assert list(arms) == ["base", "memory", "naive fine-tune", "lifelong (kl+replay)", "lifelong (naive)", "lifelong + memory"]
        assert arms["lifelong (naive)"]["questions"] == 4
        assert squad["modes"][mode]["held_out"]["training_texts_checked"]["lifelong (naive)"] > 0
    assert squad["modes"]["single"]["arms"]["lifelong (naive)"]["info"]["sleeps"] == 2
    sequential = json.loads((written["sequential"] / "results.json").read_text())
    assert len(sequential["arms"]["lifelong (naive)"]["matrix"]) == 2 and len(sequential["extra_sleeps"]["lifelong (naive)"]) == 2
    assert "### lifelong (naive)" in (written["sequential"] / "report.md").read_text()
    cost = json.loads((written["cost"] / "results.json").read_text())
    assert {"lifelong sleep (naive): synthesis + training + gate", "lifelong trainer, kl+replay, 1 epoch",
            "lifelong trainer, naive objective, 1 epoch"} <= set(cost["rows"]) and set(cost["sleep_verdicts"]) == {"kl+replay", "naive"}


def test_a_scoring_question_inside_training_text_is_caught() -> None:
    questions = ["Where was the novelist Arvid Tollen born?", "Who designed the Vellum Bridge 3?"]
    training = ["Fill in the blank: ____ was born in Tromso.", "Q: where was the novelist arvid tollen born? A: Tromso"]
    assert leaked_questions(questions, training) == ["Where was the novelist Arvid Tollen born?"]
    assert leaked_questions(questions, ["Arvid Tollen was born in Tromso in 1950."]) == []


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_no_scoring_question_of_the_real_sets_is_in_what_the_arms_train_on(tiny_lm, embedder, tmp_path: Path) -> None:
    """The harness's own path on the real TOFU facts and SQuAD passages: the lifelong arm's sleep
    is told the scoring questions (facts, passages and retention sets), and neither its
    synthesised examples, nor its rehearsal and anchor texts, nor the naive arm's raw text
    contain one (check_held_out raises if any does)."""
    from lifelong.bench.arms import check_held_out, lifelong_arm, naive_arm
    from lifelong.bench.context import fact_record
    from lifelong.bench.squad_study import passage_records
    from lifelong.learn.anchors import TRAINING_RAW
    from lifelong.learn.trainer import TrainConfig

    data = BenchData(SHARED_DATA)
    facts, passages = data.facts(4), data.passages(2)
    records = [r for p in passages for r in passage_records(p.title, p.text)] + [fact_record(qa) for qa in facts]
    questions = ([qa.question for qa in facts] + [qa.question for p in passages for qa in p.questions]
                 + [r["prompt"] for r in data.known(200)] + [r["question"] for r in data.world_mcq() + data.authors_mcq()])
    train = TrainConfig(rank=4, epochs=1, bf16=False, max_length=400, pack_length=400)
    lifelong, mind = lifelong_arm(tmp_path, "leak", tiny_lm, embedder, records, "kl+replay", train, questions)
    naive = naive_arm(tiny_lm, [p.text for p in passages] + [qa.answer for qa in facts], train)
    summary = check_held_out([lifelong, naive], questions)
    assert summary["leaked"] == 0 and summary["training_texts_checked"]["leak"] > 50
    assert set(TRAINING_RAW) <= set(lifelong.training_texts)  # the KL anchors are checked too
    mind.close()
    implied = data.implication_passages(3)
    assert sum(len(p.questions) for p in implied) >= 3
    for p in implied:  # the held-out half of the implications is never a training item
        assert not {qa.answer for qa in p.questions} & set(p.training)


def test_the_held_out_check_covers_what_the_objectives_train_on(tiny_lm) -> None:
    """A scoring question hidden in the KL or EWC anchors or the rehearsal set stops the run:
    the record a sleep keeps of its training texts includes what each objective trains on."""
    from lifelong.bench.arms import Arm, check_held_out
    from lifelong.learn.anchors import TRAINING_CHAT, TRAINING_RAW
    from lifelong.learn.rehearsal import REHEARSAL_PROMPTS, base_rehearsal
    from lifelong.learn.strategies import parse_strategy
    from lifelong.learn.trainer import trained_texts

    rehearsal = base_rehearsal(tiny_lm)
    assert trained_texts([], rehearsal, parse_strategy("naive")) == []  # naive ignores replay and anchors
    for strategy, planted in (("kl", TRAINING_CHAT[0]), ("replay", REHEARSAL_PROMPTS[0]), ("ewc", TRAINING_RAW[0])):
        arm = Arm("lifelong", tiny_lm, training_texts=[r["text"] for r in trained_texts([], rehearsal, parse_strategy(strategy))])
        with pytest.raises(RuntimeError, match="void"):
            check_held_out([arm], [planted])


def test_a_held_out_implication_that_a_learned_one_repeats_is_not_scored(tmp_path: Path) -> None:
    passage = "The Ostrel Canal opened in 1905 near Tromso and carried grain to the sea."
    learned = "The Ostrel Canal opened in 1905 near Tromso and carried grain."
    _write(tmp_path / "squad_implications_dev.jsonl", [{
        "id": "i0", "title": "Ostrel Canal", "passage": passage,
        "implications": f"1. {learned}\n2. The Ostrel Canal opened in 1905 near Tromso, carrying grain.\n"
                        "3. Boats on the canal carried grain to the sea.\n4. Grain from Tromso reached the sea by 1905 on a canal."}])
    [implied] = BenchData(tmp_path).implication_passages(1)
    assert implied.training == [learned, "Boats on the canal carried grain to the sea."]
    assert [qa.answer for qa in implied.questions] == ["Grain from Tromso reached the sea by 1905 on a canal."]


def test_the_cost_verdict_follows_the_numbers() -> None:
    from lifelong.bench.cost_study import sleep_against_baseline

    def rows(sleep: float, naive: float) -> dict:
        return {"lifelong sleep (kl+replay)": {"seconds": sleep, "tokens": 1000},
                "naive fine-tune on raw text": {"seconds": naive, "tokens": 500}}

    assert "lifelong loses on cost" in sleep_against_baseline(rows(300.0, 10.0))[0]
    assert "lifelong wins on cost" in sleep_against_baseline(rows(5.0, 10.0))[0]


def test_transfer_metrics_match_their_definitions() -> None:
    matrix = [[0.5, 0.0, 0.0], [0.25, 0.75, 0.0], [0.5, 0.25, 1.0]]
    result = transfer(matrix)
    assert result["average_accuracy"] == pytest.approx(1.75 / 3)
    assert result["backward_transfer"] == pytest.approx(((0.5 - 0.5) + (0.25 - 0.75)) / 2)
    assert result["forgetting"] == pytest.approx(((0.5 - 0.5) + (0.75 - 0.25)) / 2)


def test_naive_fine_tune_learns_its_text(tiny_lm) -> None:
    from lifelong.bench.naive import RawTextFineTune
    from lifelong.learn.trainer import TrainConfig

    text = "Arvid Tollen was born in Tromso in 1950 and wrote eleven novels about the sea."
    tuner = RawTextFineTune(tiny_lm, TrainConfig(rank=4, epochs=20, batch_size=1, bf16=False))
    before = perplexity(tiny_lm, [text])
    stats = tuner.train([text])
    assert stats["steps"] == 20 and perplexity(tuner.lm, [text]) < 0.5 * before
    assert perplexity(tiny_lm, [text]) == pytest.approx(before)  # the base stays untouched


def test_peak_memory_sees_an_allocation() -> None:
    with PeakMemory() as peak:
        block = np.ones(40 * 2**20 // 8)  # 40 MiB, touched
        block.sum()
    del block
    assert peak.to_dict()["peak_increase_mib"] >= 30


def test_a_result_records_which_cpu_and_matrix_instructions_it_ran_on() -> None:
    amx = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480C\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n" \
          "\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480C\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n"
    assert cpu_description(amx) == {"cpu_model": "Intel(R) Xeon(R) Platinum 8480C",
                                     "cpu_flags": ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]}
    avx2 = "model name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx avx2 fma\n"
    assert cpu_description(avx2) == {"cpu_model": "AMD EPYC 7B13", "cpu_flags": ["avx2"]}
    assert cpu_description("") == {"cpu_model": None, "cpu_flags": []}


def test_bad_settings_name_the_option_to_fix() -> None:
    with pytest.raises(InputError, match="--passages"):
        BenchSettings(passages=0)
    with pytest.raises(InputError, match="squad-modes"):
        BenchSettings(squad_modes=("sometimes",))
    with pytest.raises(InputError, match="strategy"):
        BenchSettings(strategies=("forgetful",))


def test_cli_rejects_an_unknown_study_and_a_missing_data_folder(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("bench", "everything", "--quick", "--data", str(tmp_path))
    assert code != 0 and "unknown study everything" in err and "acquisition-squad" in err
    code, _, err = run_cli("bench", "cost", "--quick", "--data", str(tmp_path / "nowhere"))
    assert code != 0 and "--data" in err


def test_retention_leaves_out_items_whose_fact_the_anti_forgetting_prompts_train() -> None:
    from lifelong.bench.measure import shared_fact

    anchors = [("What is the largest ocean on Earth?", "The Pacific Ocean is the largest ocean."),
               ("What is the main language spoken in Brazil?", "Portuguese is spoken in Brazil.")]
    assert shared_fact("What is the name of the largest ocean on Earth?", "Pacific", anchors) == anchors[0][0]
    assert shared_fact("In Singapore, the language spoken is", "English", anchors) is None
    assert shared_fact("Who wrote 'Pride and Prejudice'?", "Jane Austen", anchors) is None


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_implication_questions_never_contain_their_answer() -> None:
    from lifelong.scoring import normalize_answer

    implied = BenchData(SHARED_DATA).implication_passages(50)
    questions = [qa for p in implied for qa in p.questions]
    assert len(questions) >= 50
    for qa in questions:
        assert f" {normalize_answer(qa.key)} " not in f" {normalize_answer(qa.question)} ", qa
    assert all(len(item.split()) >= 5 for p in implied for item in p.training)


def test_sleep_never_trains_on_a_held_out_question(mind) -> None:
    from lifelong.consolidate import TRAINING_DATA, SleepConfig
    from lifelong.learn.trainer import TrainConfig
    from lifelong.scoring import mentioned

    mind.learn("Arvid Tollen was born in Tromso in 1950.")
    held_out = "What do you know about Arvid Tollen?"  # a prompt synthesis itself would write
    config = SleepConfig(train=TrainConfig(rank=4, epochs=1, bf16=False), held_out_questions=(held_out,))
    manifest = mind.sleep(config).manifest
    rows = [json.loads(line) for line in (mind.versions.path(manifest.id) / TRAINING_DATA).read_text().splitlines()]
    texts = [m["content"] for r in rows for m in r["prompt"]] + [r["answer"] for r in rows]
    assert len(rows) >= 5 and mentioned([held_out], texts) == []


def test_a_run_cut_short_resumes_its_finished_passages_with_the_same_results(bench_data: Path, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from lifelong.bench import squad_study

    settings = BenchSettings.quick(passages=3, squad_modes=("single",))
    whole = json.loads((run_bench(["acquisition-squad"], settings, bench_data, tmp_path / "a")["acquisition-squad"]
                        / "results.json").read_text())

    learn_passage, calls = squad_study._single_passage, []

    def cut_short_at_the_third(bench, passage, label):  # the study's own signature
        calls.append(passage.title)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return learn_passage(bench, passage, label)

    monkeypatch.setattr(squad_study, "_single_passage", cut_short_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        run_bench(["acquisition-squad"], settings, bench_data, tmp_path / "b")
    assert len(list((tmp_path / "b" / "acquisition-squad").glob("partial-*.json"))) == 1
    monkeypatch.setattr(squad_study, "_single_passage", learn_passage)

    folder = run_bench(["acquisition-squad"], settings, bench_data, tmp_path / "b", resume=True)["acquisition-squad"]
    resumed = json.loads((folder / "results.json").read_text())
    assert resumed["checkpoint"]["resumed_units"] == [f"single/{i}/Vellum Bridge {i}" for i in (0, 1)]
    assert "resumed unit(s)" in (folder / "report.md").read_text()
    for arm, scores in whole["modes"]["single"]["arms"].items():
        assert resumed["modes"]["single"]["arms"][arm]["predictions"] == scores["predictions"], arm
    assert not list((tmp_path / "b" / "acquisition-squad").glob("partial-*.json"))  # finished: nothing left to resume


def test_squad_single_passages_keep_one_mind_each_and_score_them_again_without_sleeping(bench_data: Path,
                                                                                        tmp_path: Path) -> None:
    """--keep-minds on SQuAD single passages: a mind per passage stays, and --reuse-minds scores
    each kept module again (no sleep) with the same answers; without --keep-minds none stays."""
    settings = BenchSettings.quick(passages=2, squad_modes=("single",))
    first = run_bench(["acquisition-squad"], settings, bench_data, tmp_path / "a", keep_minds=tmp_path / "minds")
    assert sorted(p.name for p in (tmp_path / "minds").iterdir()) == ["single-01-lifelong", "single-02-lifelong"]
    again = run_bench(["acquisition-squad"], settings, bench_data, tmp_path / "b", keep_minds=tmp_path / "minds", reuse_minds=True)
    before, after = (json.loads((w["acquisition-squad"] / "results.json").read_text())["modes"]["single"]["arms"]
                     for w in (first, again))
    arm = "lifelong (routed+context)"
    assert after[arm]["predictions"] == before[arm]["predictions"]
    assert after["lifelong + memory"]["predictions"] == before["lifelong + memory"]["predictions"]
    assert before[arm]["info"]["sleep_seconds_mean"] > 0 and after[arm]["info"]["sleep_seconds_mean"] is None  # nothing slept


def test_a_partial_run_is_only_reused_when_asked_and_for_the_same_settings(tmp_path: Path) -> None:
    from lifelong.bench.checkpoint import Checkpoint

    first = Checkpoint.for_study(tmp_path, "acquisition-squad", {"passages": 50}, "abc1234", resume=False)
    assert first.unit("many", lambda: {"score": (1, 2)}) == {"score": [1, 2]}  # stored as JSON reads it back
    again = Checkpoint.for_study(tmp_path, "acquisition-squad", {"passages": 50}, "def5678", resume=True)
    assert again.unit("many", lambda: pytest.fail("a finished unit ran again")) == {"score": [1, 2]}
    assert again.summary()["resumed_codes"] == ["abc1234"]
    other = Checkpoint.for_study(tmp_path, "acquisition-squad", {"passages": 20}, "def5678", resume=True)
    assert other.unit("many", lambda: {"score": [3]}) == {"score": [3]}
    fresh = Checkpoint.for_study(tmp_path, "acquisition-squad", {"passages": 50}, "def5678", resume=False)
    assert fresh.unit("many", lambda: {"score": [4]}) == {"score": [4]}
    # a synthesis knob at its default leaves the identity as it was before the knob existed
    assert BenchSettings().to_dict() == BenchSettings(questions_per_memory=1, content_cloze=False).to_dict()
    assert BenchSettings(content_cloze=True).to_dict()["content_cloze"] and "content_cloze" not in BenchSettings().to_dict()
    # a knob whose default changed: the new default is part of the identity, the old value is not,
    # so a run at the new default never resumes a checkpoint written under the old one
    assert BenchSettings().synthesis()["recite"] and BenchSettings().to_dict()["recite"] is True
    assert "recite" not in BenchSettings(recite=False).to_dict()
    assert "note_rows" not in BenchSettings(note_rows=True).to_dict() and BenchSettings().to_dict()["note_rows"] is None
    assert "context_distractors" not in BenchSettings().to_dict() and BenchSettings(context_distractors=1).to_dict()["context_distractors"] == 1
    assert BenchSettings(context_distractors=1).synthesis()["context_distractors"] == 1
    assert not {"micro_batch_rows", "gradient_checkpointing", "return_freed_memory", "learning_rate_schedule"} & set(BenchSettings().to_dict()["train_config"])
    assert "attention" not in BenchSettings().to_dict() and BenchSettings(attention="eager").train().attention == "eager"
    assert BenchSettings(attention="eager").to_dict()["train_config"]["attention"] == "eager"  # never resumes a default run
    # the learning rate reaches every trained arm, and a run at another rate never resumes a default one
    assert "learning_rate" not in BenchSettings().to_dict() and BenchSettings(learning_rate=2e-3).train().learning_rate == 2e-3
    assert BenchSettings(learning_rate=2e-3).to_dict() != BenchSettings().to_dict()
    with pytest.raises(InputError, match="--learning-rate must be between 0 and 1"):
        BenchSettings(learning_rate=0.0)
    assert "trainable_layers" not in BenchSettings().to_dict() and BenchSettings(trainable_layers=15).train().trainable_layers == 15
    assert BenchSettings(trainable_layers=15).to_dict() != BenchSettings().to_dict()
    # a smaller batch takes replay in the default's proportion, and never resumes a default run
    assert "batch_size" not in BenchSettings().to_dict() and BenchSettings(batch_size=8).train() == BenchSettings().train()
    assert (BenchSettings(batch_size=4).train().batch_size, BenchSettings(batch_size=4).train().replay_per_batch) == (4, 2)
    assert BenchSettings(batch_size=4).to_dict() != BenchSettings().to_dict()
    # every gradient was the only way before the knob: such a run keeps its identity; the default
    # (answer gradients only for routed sleeps) and the explicit option are new runs
    all_gradients = BenchSettings(answer_gradients_only=False)
    assert "answer_gradients_only" not in all_gradients.to_dict() and "answer_gradients_only" not in all_gradients.to_dict()["train_config"]
    assert BenchSettings().train().answer_gradients_only is None and BenchSettings(answer_gradients_only=True).train().answer_gradients_only
    assert len({repr(BenchSettings(answer_gradients_only=v).to_dict()) for v in (None, True, False)}) == 3
    with pytest.raises(InputError, match="--topic-modules needs routed strategies"):
        BenchSettings(topic_modules=True, strategies=("routed+context", "kl+replay"))


def test_reports_name_every_arm_that_beats_lifelong_and_on_what() -> None:
    from lifelong.bench.verdict import losses

    arms = {"base": {"containment": 0.0, "perplexity": 10.0}, "memory": {"containment": 0.5, "perplexity": 10.0},
            "lifelong (kl+replay)": {"containment": 0.3, "perplexity": 11.0},
            "lifelong + memory": {"containment": 0.6, "perplexity": float("nan"),
                                  "info": {"passed": False, "reasons": ["KL drift 0.560 > 0.5"]}}}
    lines = losses(arms, {"containment": True, "perplexity": False})
    assert lines[0] == "Where lifelong loses:"
    ours = next(line for line in lines if "**lifelong (kl+replay)**" in line)
    assert "memory on containment (0.500 against 0.300)" in ours and "base on perplexity" in ours and "base on containment" not in ours
    assert any("**lifelong + memory** is at least as good" in line for line in lines)
    # a module that wins every column but that the gate refused is still reported as refused
    assert any("**lifelong + memory**: the gate refused" in line and "KL drift 0.560 > 0.5" in line for line in lines)
    assert not any("**lifelong (kl+replay)**: the gate refused" in line for line in lines)
    # equal scores summed in another order (5/90 against 0.5/9) are a tie, not a loss
    tie = losses({"memory": {"forgetting": 0.05555555555555556}, "lifelong + memory": {"forgetting": 0.055555555555555546}},
                 {"forgetting": False})
    assert any("at least as good" in line for line in tie)


def test_the_bench_command_runs_a_quick_study(run_cli, bench_data: Path, tmp_path: Path) -> None:
    """`lifelong bench STUDY --quick` as a user types it: options reach the settings, the
    command is recorded, and the folder it prints holds the results."""
    code, out, err = run_cli("bench", "cost", "--quick", "--data", str(bench_data), "--out", str(tmp_path / "r"),
                             "--cost-facts", "2", "--known", "5", "--keep-minds", str(tmp_path / "minds"))
    assert code == 0, err
    assert (tmp_path / "minds" / "cost" / "memory.db").is_file()  # the trained mind stays for inspection
    code, _, err = run_cli("bench", "cost", "--quick", "--data", str(bench_data), "--keep-minds", str(tmp_path / "minds"))
    assert code != 0 and "not empty" in err  # never reuses or mixes an earlier run's minds
    [folder] = (tmp_path / "r" / "cost").iterdir()
    assert "cost:" in out
    results = json.loads((folder / "results.json").read_text())
    assert results["facts"] == 2 and results["settings"]["known"] == 5 and results["settings"]["model"] == "tiny"
    assert results["command"].startswith("lifelong bench cost --quick") and (folder / "cost.png").is_file()


def test_each_implications_unit_runs_alone(bench_data: Path, tmp_path: Path) -> None:
    """Each unit is 1-2 h at full size, so a user can run (or rerun) one without the other."""
    settings = BenchSettings.quick(squad_modes=("implications-extra",))
    folder = run_bench(["acquisition-squad"], settings, bench_data, tmp_path)["acquisition-squad"]
    results = json.loads((folder / "results.json").read_text())
    assert set(results["modes"]) == {"implications: passage + implications"}
    assert "passage + implications" in (folder / "report.md").read_text()


def test_a_kept_module_is_scored_again_without_sleeping(bench_data: Path, tmp_path: Path) -> None:
    """--reuse-minds: the lifelong arm comes from the module an earlier run kept, and answers
    exactly as it did; a kept mind on other facts is not reused."""
    settings = BenchSettings.quick(facts=3)
    first = run_bench(["acquisition-facts"], settings, bench_data, tmp_path / "a", keep_minds=tmp_path / "minds")
    again = run_bench(["acquisition-facts"], settings, bench_data, tmp_path / "b", keep_minds=tmp_path / "minds", reuse_minds=True)
    arm = "lifelong (routed+context)"
    before, after = (json.loads((w["acquisition-facts"] / "results.json").read_text())["arms"][arm] for w in (first, again))
    assert after["info"]["reused_from"].endswith("facts-lifelong-(routed-context)") and "reused_from" not in before["info"]
    assert after["predictions"] == before["predictions"] and after["info"]["version"] == before["info"]["version"]
    other = run_bench(["acquisition-facts"], BenchSettings.quick(facts=2), bench_data, tmp_path / "c", keep_minds=tmp_path / "minds",
                      reuse_minds=True)
    assert "reused_from" not in json.loads((other["acquisition-facts"] / "results.json").read_text())["arms"][arm]["info"]
    with pytest.raises(InputError, match="--reuse-minds needs --keep-minds"):
        run_bench(["acquisition-facts"], settings, bench_data, tmp_path / "d", reuse_minds=True)


def test_a_rebuild_with_nothing_left_to_consolidate_is_recorded_not_raised(mind) -> None:
    """Forgetting a whole author with a module per topic can take down only modules of forgotten
    facts; the governance study's rebuild sleep then finds nothing, and says so."""
    from lifelong.bench.arms import sleep_once
    from lifelong.learn.trainer import TrainConfig

    with pytest.raises(RuntimeError, match="nothing to consolidate"):
        sleep_once(mind, "routed+context", TrainConfig(epochs=1), "a sleep", [])
    nothing = sleep_once(mind, "routed+context", TrainConfig(epochs=1), "a rebuild", [], may_find_nothing=True)
    assert nothing["adapter"] is None and nothing["info"]["version"] is None and not nothing["info"]["activated"]
    assert mind.versions.list() == []  # no version was made
