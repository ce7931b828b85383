"""Where lifelong loses: every report names each arm that beats a lifelong arm, and on what,
so a reader never has to find our losses in a table by themselves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lifelong.bench.output import cell

LABELS = {"rouge_l_recall": "ROUGE-L recall", "token_f1": "token F1", "known_facts": "known facts kept",
          "world_mcq": "world MCQ", "authors_mcq": "authors MCQ", "kl_drift": "KL to base", "backward_transfer": "BWT",
          "average_accuracy": "average accuracy", "tokens_per_second": "tokens/s", "peak_rss_mib": "peak RSS (MiB)"}


TIE = 1e-9


def losses(arms: Mapping[str, Mapping[str, Any]], metrics: Mapping[str, bool]) -> list[str]:
    """Report lines: for each lifelong arm, the other (non-lifelong) arms that beat it on a
    metric. `metrics` maps a metric key to True when higher is better."""
    ours = [name for name in arms if name.startswith("lifelong")]
    theirs = [name for name in arms if not name.startswith("lifelong")]
    lines = []
    for name in ours:
        beaten = []
        for metric, higher_is_better in metrics.items():
            mine = arms[name].get(metric)
            if not isinstance(mine, int | float) or mine != mine:  # missing or NaN: nothing to compare
                continue
            for other in theirs:
                value = arms[other].get(metric)
                margin = (value - mine if higher_is_better else mine - value) if isinstance(value, int | float) else 0.0
                if value == value and margin > TIE:  # equal scores summed in another order are not a loss
                    beaten.append(f"{other} on {LABELS.get(metric, metric)} ({cell(value)} against {cell(mine)})")
        lines.append(f"- **{name}** loses to " + "; ".join(beaten) + "." if beaten
                     else f"- **{name}** is at least as good as every other arm on the metrics compared here.")
        lines += _refusal(name, arms[name].get("info"))
    return ["Where lifelong loses:", "", *lines, ""] if lines else []


def _refusal(name: str, info: Any) -> list[str]:
    """A module the gate refused would not be served, whatever it scores: say so beside the scores."""
    if not isinstance(info, Mapping) or info.get("passed", True):
        return []
    reasons = "; ".join(info.get("reasons") or []) or "no reason recorded"
    return [f"- **{name}**: the gate refused this module ({reasons}); it is scored anyway, but would not be served."]
