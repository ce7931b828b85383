"""How well the person-name recognizer (src/lifelong/memory/person_names.py) finds names it was
never tuned on, and how often it takes a place, a company or a title for a person.

- first set: bench/person_names_held_out.py NAMED and PLAIN, written by a reviewer who never
  saw the recognizer: 120 sentences with one invented full name each (40 common in the US/UK,
  80 from elsewhere) and 120 sentences with no person's name but many capitalised look-alikes
  (Washington Square, Morgan Stanley, Christmas Eve). Its first score was taken on the first
  version of the recognizer (32/40, 16/80, 9/120 flagged); the rules were then extended while
  reading its misses, so it is no longer held out.
- second set: SECOND_NAMED (30 US/UK/Irish/Australian names, 70 from elsewhere) and
  SECOND_PLAIN (100 look-alikes), written by another reviewer who saw neither the recognizer
  nor the first set, and scored once after the rules were fixed: the held-out number.
- real authors: the 400 author names of the real-author MCQ (answers and distractors), each
  in three neutral sentences ("I finished a novel by {name} last night.").
- TOFU: the 15 fictitious authors' full names where they occur in the 300 dev answers (these
  were read while the recognizer was written, so this is not a held-out number).
- the governance study's 100 chat turns, each naming the owner of a planted secret (names
  from Scandinavia, Hungary, Portugal...; written for that study, not for this recognizer).
- SQuAD passages: spans found, listed for reading (no labels: a reader judges them).

A name counts as found when one finding covers all of it. Writes
results/person_names/<UTC timestamp>/results.json and person_names.png.

    .venv/bin/python benchmarks/person_names.py [--data ../shared/data]

A few seconds: no model runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _common import machine_info, results_dir, write_json

from lifelong.bench import person_names_held_out as held_out
from lifelong.bench.canaries import plant_canaries
from lifelong.memory.person_names import census_names, find_person_names

TEMPLATES = ("I finished a novel by {name} last night.", "{name} is on the reading list for March.",
             "The library had three copies of the one {name} wrote.")
TOFU_AUTHORS = ("Jaime Vasquez", "Chukwu Akabueze", "Evelyn Desmet", "Anara Yusifova", "Jordan Sinclair", "Katie Adler",
                "Elliot Patrick Benson", "Alejandro Tomasino", "Ingrid Christensen", "Simon Makoni", "Yevgeny Grimkov",
                "Maria Estela Gutierrez", "Bezabih Gebre", "Luis Marcelo Garcia", "Linda Harrison")


def covered(text: str, name: str) -> tuple[bool, list[str]]:
    """Whether a finding covers the whole of `name` in `text`, and every span found there."""
    spans = find_person_names(text)
    start = text.index(name)
    whole = any(s.start <= start and s.end >= start + len(name) for s in spans)
    return whole, [text[s.start:s.end] for s in spans]


def recall(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    results = [(text, name, *covered(text, name)) for text, name in pairs]
    missed = [{"text": t, "name": n, "found": f} for t, n, ok, f in results if not ok]
    return {"names": len(pairs), "found": len(pairs) - len(missed), "recall": 1 - len(missed) / len(pairs), "missed": missed}


def false_flags(texts: list[str]) -> dict[str, Any]:
    flagged = [{"text": t, "spans": [t[s.start:s.end] for s in find_person_names(t)]} for t in texts]
    flagged = [f for f in flagged if f["spans"]]
    return {"sentences": len(texts), "flagged": len(flagged), "rate": len(flagged) / len(texts), "flagged_sentences": flagged}


def spans_found(texts: list[str]) -> dict[str, Any]:
    spans = [t[s.start:s.end] for t in texts for s in find_person_names(t)]
    counts: dict[str, int] = {}
    for span in spans:
        counts[span] = counts.get(span, 0) + 1
    return {"texts": len(texts), "spans": len(spans), "distinct": sorted(counts, key=lambda s: (-counts[s], s))}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = {"held out: US/UK names": results["second_held_out"]["named_us_uk"]["recall"],
            "held out: names from elsewhere": results["second_held_out"]["named_elsewhere"]["recall"],
            "first set (seen): all names": results["held_out"]["named_all"]["recall"],
            "real authors (3 sentences each)": results["real_authors"]["recall"],
            "TOFU authors (seen)": results["tofu"]["recall"],
            "chat-turn owners": results["canary_chat_turns"]["recall"],
            "held out: look-alikes flagged": results["second_held_out"]["plain"]["rate"],
            "first set (seen): look-alikes flagged": results["held_out"]["plain"]["rate"]}
    fig, ax = plt.subplots(figsize=(9, 4))
    colours = ["tab:green"] * 6 + ["tab:red"] * 2
    ax.barh(list(bars), list(bars.values()), color=colours)
    for y, value in enumerate(bars.values()):
        ax.text(value + 0.01, y, f"{value:.2f}", va="center")
    ax.set_xlim(0, 1.1)
    ax.invert_yaxis()
    ax.set_xlabel("share of names found (green) / of name-free sentences flagged (red)")
    ax.set_title("Person-name recognizer: census lexicon + titles + introducing phrases")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    started = time.perf_counter()
    load_start = time.perf_counter()
    census_names()
    load_s = time.perf_counter() - load_start

    named = list(held_out.NAMED)
    second = list(held_out.SECOND_NAMED)
    authors_rows = [json.loads(line) for line in (args.data / "real_authors_mcq.jsonl").read_text().splitlines() if line]
    authors = sorted({n for r in authors_rows for n in [r["answer"], *r["distractors"]]})
    tofu = [json.loads(line)["answer"] for line in (args.data / "tofu_authors_dev.jsonl").read_text().splitlines() if line]
    passages = [json.loads(line)["passage"] for line in (args.data / "squad_passages_dev.jsonl").read_text().splitlines()
                if line]
    canaries = plant_canaries(100, tofu[-100:], seed=0)

    time_start = time.perf_counter()
    results: dict[str, Any] = {
        "held_out": {"named_us_uk": recall(named[:40]), "named_elsewhere": recall(named[40:]), "named_all": recall(named),
                     "plain": false_flags(list(held_out.PLAIN))},
        "second_held_out": {"named_us_uk": recall(second[:30]), "named_elsewhere": recall(second[30:]),
                            "named_all": recall(second), "plain": false_flags(list(held_out.SECOND_PLAIN))},
        "real_authors": recall([(t.format(name=a), a) for a in authors for t in TEMPLATES]),
        "tofu": recall([(text, a) for text in tofu for a in TOFU_AUTHORS if a in text]),
        "squad_passages": spans_found(sorted(set(passages))),
        "canary_chat_turns": recall([(c.turn, c.owner) for c in canaries]),
    }
    texts = len(named) + len(held_out.PLAIN) + len(second) + len(held_out.SECOND_PLAIN) + 3 * len(authors) + len(tofu) + len(set(passages)) + len(canaries)
    results["speed"] = {"census_load_s": load_s, "texts": texts,
                        "ms_per_text": (time.perf_counter() - time_start) * 1000 / texts}
    results["census_lists"] = {"given_names": len(census_names()[0]), "family_names": len(census_names()[1])}
    results["machine"] = machine_info()
    results["wall_s"] = time.perf_counter() - started
    out = results_dir("person_names")
    write_json(out / "results.json", results)
    plot(results, out / "person_names.png")
    for key, label in (("second_held_out", "held out (second set)"), ("held_out", "first set (seen)")):
        h = results[key]
        print(f"{label}: {h['named_us_uk']['found']}/{h['named_us_uk']['names']} US/UK names, "
              f"{h['named_elsewhere']['found']}/{h['named_elsewhere']['names']} from elsewhere; "
              f"{h['plain']['flagged']}/{h['plain']['sentences']} name-free sentences flagged")
    print(f"real authors: {results['real_authors']['found']}/{results['real_authors']['names']}; "
          f"TOFU (seen): {results['tofu']['found']}/{results['tofu']['names']}")
    print(f"SQuAD passages: {results['squad_passages']['spans']} spans; chat-turn owners: "
          f"{results['canary_chat_turns']['found']}/{results['canary_chat_turns']['names']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
