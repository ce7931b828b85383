"""The one gate: what a candidate version is measured on, and the rules that promote it.

A sleep and a merge both produce a `GateMetrics` and ask `judge`; the manifest keeps the
numbers and the verdict, so `lifelong show` says why a version was or was not promoted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from lifelong.versions import Verdict


@dataclass(frozen=True)
class GatePolicy:
    # Share of the base's recorded completions (hundreds, most about vocabulary words) still
    # given. A routed module leaves every input it does not claim on the exact base weights,
    # so it keeps all of them unless the router claims general text.
    min_retention: float = 0.98
    # Mean KL(base || candidate) per token of the base's continuations of the held-out
    # anchors. Measured on SmolLM2-135M with 10 TOFU facts: naive 0.72 (retention 0.75),
    # kl+replay 0.16 (retention 0.83); 0.5 lets the second kind through, not the first.
    max_kl: float = 0.5
    # Earlier sleeps' facts, and the new facts answered with their memory in the prompt, may
    # lose at most this share of their probes against the parent, and one probe when there
    # are at least 10: there a single flipped probe is within noise.
    max_old_fact_drop: float = 0.1
    # Where the candidate completes no more of its held-out probes than the parent, it still
    # learned if it made their answers this much likelier: mean log-probability per answer
    # token, over the parent's. Completion probes ask a passage's exact wording: one SQuAD
    # Teacher passage has a single probe, which its module made 5.3 nats per token likelier
    # and still did not complete. On six passages the modules' own gains were 0.86 to 5.27;
    # applied to another topic's probes, -3.3 to +0.67 (benchmarks/logprob_gain_calibration.py).
    min_logprob_gain: float = 1.0


@dataclass(frozen=True)
class GateMetrics:
    acquisition: float  # new facts' held-out probes, closed-book
    acquisition_parent: float
    acquisition_probes: int
    retention_agreement: float
    kl_drift: float
    retention_probes: int = 0
    with_memory: float | None = None  # the same probes with their memory in the prompt
    with_memory_parent: float | None = None
    old_facts: float | None = None  # earlier sleeps' facts, closed-book
    old_facts_parent: float | None = None
    old_fact_probes: int = 0
    acquisition_logprob_gain: float | None = None  # mean log-prob per answer token over the parent's, same probes
    with_memory_probes: int = 0  # probes asked with their memory (those that fit the window); 0: not recorded

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateMetrics:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(metrics: GateMetrics | Mapping[str, Any], policy: GatePolicy, require_gain: bool = True) -> Verdict:
    """Promote only a candidate that learned, kept what the base knew, did not drift, and lost
    nothing of earlier facts or of reading its notes. A NaN metric fails its check. A merge
    passes `require_gain=False`: it must answer its probes as well as the module it folds in
    (its parent here), not better."""
    m = metrics if isinstance(metrics, GateMetrics) else GateMetrics.from_dict(metrics)
    reasons = []
    # no probes (no salient span with a 3-word prefix): acquisition cannot be judged, so it does not block
    if m.acquisition_probes and require_gain and not learned(m, policy):
        gain = "" if m.acquisition_logprob_gain is None else \
            f" (its answers {m.acquisition_logprob_gain:+.2f} log-prob per token, {policy.min_logprob_gain} needed)"
        reasons.append(f"acquisition {m.acquisition:.2f} does not beat the parent's {m.acquisition_parent:.2f}{gain}")
    if m.acquisition_probes and not require_gain and not m.acquisition >= m.acquisition_parent:
        reasons.append(f"acquisition fell from {m.acquisition_parent:.2f} to {m.acquisition:.2f}")
    reasons += retention_reasons(m, policy)
    if m.old_facts is not None and m.old_facts_parent is not None and \
            _lost(m.old_facts_parent, m.old_facts, m.old_fact_probes) > allowed_loss(m.old_fact_probes, policy):
        reasons.append(f"earlier facts fell from {m.old_facts_parent:.2f} to {m.old_facts:.2f}")
    if m.with_memory is not None and m.with_memory_parent is not None and \
            _lost(m.with_memory_parent, m.with_memory, with_memory_count(m)) > allowed_loss(with_memory_count(m), policy):
        reasons.append(f"answers with the memory in the prompt fell from {m.with_memory_parent:.2f} to {m.with_memory:.2f}")
    return Verdict(passed=not reasons, reasons=reasons)


def learned(m: GateMetrics, policy: GatePolicy) -> bool:
    """More of the held-out probes completed than the parent, or as many and their answers
    clearly likelier (a NaN gain is not)."""
    if m.acquisition > m.acquisition_parent:
        return True
    gain = m.acquisition_logprob_gain
    return m.acquisition >= m.acquisition_parent and gain is not None and gain >= policy.min_logprob_gain


def retention_reasons(m: GateMetrics, policy: GatePolicy) -> list[str]:
    """The retention checks every candidate shares (a NaN metric fails them too)."""
    reasons = []
    if not m.retention_agreement >= policy.min_retention:
        reasons.append(f"retention agreement {m.retention_agreement:.2f} < {policy.min_retention}")
    if not m.kl_drift <= policy.max_kl:
        reasons.append(f"KL drift {m.kl_drift:.3f} > {policy.max_kl}")
    return reasons


def allowed_loss(probes: int, policy: GatePolicy) -> float:
    return max(1 if probes >= 10 else 0, policy.max_old_fact_drop * probes)


def with_memory_count(m: GateMetrics) -> int:
    """Probes the with-memory shares are shares of: those asked (older manifests did not record
    it, and there every probe was asked unless a note overflowed the window)."""
    return m.with_memory_probes or m.acquisition_probes


def _lost(parent: float, candidate: float, probes: int) -> float:
    return round((parent - candidate) * probes)
