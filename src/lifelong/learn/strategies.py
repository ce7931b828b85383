"""What a sleep does beyond learning its examples, as small plug-ins named in one registry.

A strategy string combines names with '+', e.g. "routed+distill". Each component either adds
training rows, adds a loss term, or decides where the module acts; the CLI help and the
benchmark's strategy lists read `COMPONENTS`, so a new one is named in one place. Each
anti-forgetting component is tested by showing less forgetting than `naive`
(tests/test_training.py), not by exercising itself.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

COMPONENTS: dict[str, str] = {
    "naive": "answer loss on the synthesised examples only",
    "routed": "a fresh module per sleep (one per topic among its memories by default), acting only on inputs near its memories (a router with a radius); "
              "the exact base weights answer everything else",
    "distill": "learn the frozen model's top-k next-token distribution over each answer with the memory in its "
               "prompt (soft targets), beside the answer itself",
    "context": "also train with distractor notes only in the prompt, so the module answers past the wrong notes "
               "retrieval brings, and (unrouted modules, or --note-rows) with the memory among them, so it reads "
               "a retrieved note instead of fighting it (RAFT); a routed module steps aside when its note is quoted",
    "ewc": "Fisher-weighted penalty on the module's weight change",
    "kl": "KL to the frozen model on general anchor prompts",
    "replay": "mix in examples of earlier sleeps and the frozen model's answers to general prompts",
}
KNOWN = tuple(COMPONENTS)


@dataclass(frozen=True)
class Strategy:
    routed: bool = False
    context: bool = False
    distill: bool = False
    ewc: bool = False
    kl: bool = False
    replay: bool = False

    @property
    def name(self) -> str:
        parts = [f.name for f in fields(self) if getattr(self, f.name)]
        return "+".join(parts) or "naive"


def describe() -> str:
    """One line per component, for --help texts."""
    return "; ".join(f"{name}: {text}" for name, text in COMPONENTS.items())


def parse_strategy(text: str) -> Strategy:
    from lifelong.errors import InputError

    names = {part.strip() for part in text.split("+") if part.strip()}
    unknown = names - set(KNOWN)
    if unknown or not names:
        raise InputError(f"strategy '{text}' is not known; combine {', '.join(KNOWN)} with '+', e.g. routed+distill")
    return Strategy(**{f.name: f.name in names for f in fields(Strategy)})
