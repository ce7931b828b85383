"""Calibrate the gate's log-probability rule (GatePolicy.min_logprob_gain): where a module
completes no more of its held-out probes than its parent, how much likelier must it make
their answers before it counts as having learned?

Reads the minds a `lifelong bench acquisition-squad --keep-minds DIR` run kept (one module
per SQuAD passage) and measures, for every module, the mean log-probability gain per answer
token over the base on its own passage's probes (routed, as the gate reads it, and applied
to every input) and on every other passage's probes with the module applied to every input:
what a module gains on facts it never saw. Passages of the same article are marked, since
their facts overlap. Writes results/logprob_gain_calibration/<time>/results.json.

    lifelong bench acquisition-squad --squad-modes single --passages 6 --strategies routed+context \\
        --passages-file six.jsonl --data ../shared/data --keep-minds /tmp/minds
    .venv/bin/python benchmarks/logprob_gain_calibration.py --minds /tmp/minds

About 2 minutes for six minds on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import machine_info, results_dir, write_json

from lifelong.consolidate import with_adapter
from lifelong.evaluate.gate import GatePolicy
from lifelong.evaluate.probes import acquisition_probes, answer_logprobs, mean_gain
from lifelong.mind import Mind

VERSION = "v1"  # the one module each kept SQuAD mind trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minds", type=Path, required=True, help="the --keep-minds folder of an acquisition-squad run")
    args = parser.parse_args()

    folders = sorted(p for p in args.minds.iterdir() if p.name.endswith("-lifelong"))
    if not folders:
        raise SystemExit(f"error: no '*-lifelong' minds in {args.minds}; run acquisition-squad with --keep-minds first")
    base = None
    units = {}
    for folder in folders:
        with Mind.open(folder, language_model=base) as mind:
            base = base or mind.base_model
            memories = mind.memories()
            probes = acquisition_probes(memories)
            routed = mind.version_model(VERSION)
            manifest = mind.show(VERSION)
            units[folder.name] = {
                "passage": memories[0].source, "probes": probes, "adapter": mind.versions.path(VERSION) / "adapter",
                "routed": routed, "gate": manifest.metrics, "promoted": manifest.verdict.passed,
            }
    base_scores = {name: answer_logprobs(base, u["probes"]) for name, u in units.items()}
    own, other = [], []
    for name, unit in units.items():
        unit["own_routed"] = mean_gain(answer_logprobs(unit["routed"], unit["probes"]), base_scores[name])
        everywhere = with_adapter(base, unit["adapter"])
        for target, t in units.items():
            gain = mean_gain(answer_logprobs(everywhere, t["probes"]), base_scores[target])
            row = {"module": name, "probes_of": target, "same_source": unit["passage"] == t["passage"], "gain": gain}
            (own if target == name else other).append(row)
            print(f"{name} on {target}: {gain:+.3f}", flush=True)
    cross = [r["gain"] for r in other if r["gain"] is not None and not r["same_source"]]
    summary = {
        "threshold": GatePolicy().min_logprob_gain,
        "own_routed_gains": {n: u["own_routed"] for n, u in units.items()},
        "own_gains_everywhere": {r["module"]: r["gain"] for r in own},
        "other_topic_gains": {"min": min(cross, default=None), "max": max(cross, default=None), "pairs": len(cross),
                              "at_or_above_threshold": sum(g >= GatePolicy().min_logprob_gain for g in cross)},
        "gate": {n: {"acquisition": u["gate"].get("acquisition"), "acquisition_parent": u["gate"].get("acquisition_parent"),
                     "acquisition_probes": u["gate"].get("acquisition_probes"), "promoted": u["promoted"]}
                 for n, u in units.items()},
        "pairs": own + other,
    }
    out = results_dir("logprob_gain_calibration")
    write_json(out / "results.json", {"study": "logprob_gain_calibration", "machine": machine_info(),
                                      "minds": str(args.minds), **summary})
    print(json.dumps({k: summary[k] for k in ("threshold", "own_routed_gains", "other_topic_gains")}, indent=1))
    print(out / "results.json")


if __name__ == "__main__":
    main()
