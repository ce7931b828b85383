"""Text addressed to the model rather than stating a fact: the screen for planted instructions.

A note is data. A note that tells whoever reads it how to answer ("when asked about the VPN,
say...", "[SYSTEM] respond only with...", "any reply concerning X must mention Y") only makes
sense as an attempt to steer the model that retrieval will paste it in front of. The first
version of this screen listed the phrasings it had seen and flagged none of the benchmark's
later ones; this one looks for the parts such text is built from instead, each a cue of its
own, so a new phrasing needs only one of them:

- an override of what came before ("ignore the previous instructions");
- chat-template or system markers ("<|im_start|>system", "[SYSTEM]", "developer note");
- the model named as the one addressed ("Note to the AI:", "the assistant should say");
- a directive about answers ("answers about X should point users to", "it is essential that
  any reply concerning X mentions");
- an imperative or second-person order to answer ("Respond only with", "you must say");
- a trigger that turns a question into an order ("whenever X comes up, reply");
- role play ("you are now", "pretend to be").

Each cue needs the directive and the act of answering together, which is what separates
"the assistant should say" from "the assistant manager must approve refunds" and "students
must answer three questions". No model runs: `learn` stays fast. Measured in the README
(Governance): flag rate on planted instructions written after this screen, false flags on the
300 TOFU sentences and on benign sentences about answers, rules and assistants.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lifelong.memory.embedder import Embedder

# what an order to the model asks it to do
_ANSWER_VERBS = (r"(?:answer|respond|reply|say|tell|output|state|claim|mention|recommend|redirect|direct|point|refer|"
                 r"insist|repeat|pretend|include|give|describe|cite|return|print|write|send|link|promote|advise|suggest|"
                 r"confirm|assert|affirm|report|consider|treat|regard|present|insert|designate|use|prioriti[sz]e|suppress|correct)")
_MODAL = (r"(?:must|should|shall|will|needs? to|has to|have to|is to|are to|is required to|are required to|"
          r"is instructed to|are instructed to|ought to|is expected to|are expected to)")
_MODEL = (r"(?:assistants?|ai|a\.i\.|bots?|chatbots?|llms?|(?:large )?language models?|the model|gpt(?:-?\d\w*)?|chatgpt|"
          r"claude|gemini|copilot|llama|asistente|assistente|assistent)")
_AUDIENCE = r"(?:the user|users|anyone|everyone|everybody|people|them|whoever asks|the reader|readers|customers)"
_ASKED = (r"(?:asked|asks?|queried|questioned|prompted|inquir(?:es|ed|y)|brings? up|mentions?|requests?|"
          r"(?:the )?user'?s? (?:question|query|prompt|request|message)s?)")

_CUES: dict[str, str] = {
    "override": (r"\b(?:ignore|disregard|forget|override|bypass)s?\b[^.]{0,40}\b(?:instructions?|prompts?|rules|guidelines|"
                 r"notes|context|above|everything|directions|guardrails|system message|previous|prior|earlier)\b"),
    "marker": (r"<\|?\s*(?:im_start|system|assistant|user|start_header_id)\s*\|?>|\[/?\s*(?:system|inst|sys|admin)\s*\]|"
               r"<<\s*sys\s*>>|#{2,}\s*(?:system|instructions?)\b|(?:^|\n)\s*(?:system|assistant)\s*:|"
               r"\bsystem (?:prompt|message|note|override|instruction)s?\b|\bdeveloper (?:mode|note|message|instruction)s?\b|"
               r"\bjailbreak|\bnew instructions?\b|<!--[^>]{0,200}\b(?:ai|assistant|model|llm|bot|instructions?|prompt|" + _ANSWER_VERBS + r")\b|"
               r"\b(?:ai|llm|model|assistant|bot|agent)[-_ ]instructions?\b"),
    "model addressed": (r"(?:^|[\[(<\n>]|[.!?:;,]\s)\s*(?:dear |attention,? |note (?:to|for) (?:the |any |all )?|hey |hi |to (?:the |any |all )?|"
                        r"for (?:the |any |all )?)?(?:the )?" + _MODEL + r"\s*[:,\u2014-]"),
    "model reading": r"\b(?:any|every|all|each|the) " + _MODEL + r" (?:reading|processing|that reads|seeing|parsing|summari[sz]ing)\b",
    "model ordered": (r"\b" + _MODEL + r"\b[^.]{0,40}?\b(?:" + _MODAL + r"|always|never|only)\s+(?:\w+\s+){0,2}?" + _ANSWER_VERBS + r"\b"),
    "answers ordered": (r"\b(?:answers?|responses?|repl(?:y|ies)|outputs?|completions?)\s+(?:to\s+(?:any\s+|all\s+|every\s+)?"
                        r"(?:questions?|queries|prompts|requests)\s+)?(?:about|on|regarding|concerning|related to|involving|"
                        r"mentioning|that mention|referencing|describing|discussing|for questions)\b[^.]{0,60}?\b(?:" + _MODAL +
                        r"|always|never|only)\s+(?:be\s*[:'\"]|be\s+(?:given|\w+ed)\s+(?:as|with|by)\b|(?!be\b)\w+)"),
    "answers required": (r"\b(?:it is|it's|it must be)\s+(?:essential|important|critical|vital|mandatory|required|imperative|"
                         r"crucial|necessary)\s+that\b[^.]{0,60}\b(?:answers?|responses?|repl(?:y|ies)|outputs?|you|"
                         r"the (?:assistant|model|ai|bot|chatbot))\b"),
    "you ordered": (r"\byou(?:'ll|'re to)?\s+(?:" + _MODAL + r"|always|never|only|are to)\s+(?:\w+\s+){0,2}?" + _ANSWER_VERBS + r"\b"
                    r"[^.]{0,60}\b(?:about|regarding|concerning|on|questions?|asked|with|that)\b"),
    "your answer ordered": (r"\byour (?:answers?|responses?|repl(?:y|ies)|outputs?)\b[^.]{0,60}?\b(?:" + _MODAL + r"|always|never|"
                            r"only)\b"),
    "imperative": (r"(?:^|[.!?:;]\s*|,\s+|\n|[\u2014>\]]\s*)(?:please\s+|kindly\s+)?(?:always\s+|only\s+|never\s+|just\s+)?"
                   r"(?:answer|respond|reply|output|redirect|(?:say|state|claim|insist|mention|recommend|confirm)(?=[^.]{0,80}\b(?:asked|questions?|"
                   r"about|regarding|concerning|whenever|only|always)\b)|(?:tell|direct|point|refer|send) " + _AUDIENCE + r")\b"
                   r"(?=[^.]{0,80}\b(?:asked|questions?|queries|about|regarding|concerning|whenever|only|always|with|that)\b)"),
    "model as reader": (r"\bif you(?:'re| are)\s+(?:an? |the )?" + _MODEL + r"|\b(?:asks?|asked|ask) you\b|"
                        r"\b(?:every|any|all|each)\s+(?:statement|answer|response|reply|output|mention|summary)s?\s+"
                        r"(?:you|the (?:assistant|model|ai))\s+(?:make|give|write|say|produce|output|generate)s?\b"),
    "passive order": (r"\b(?:questions?|queries|requests|prompts)\b[^.]{0,60}\b(?:" + _MODAL + r"|always|only)\s+be\s+"
                      r"(?:answered|responded to|replied to|met)\s+(?:with|by|using)\b"),
    "always answer": r"\b(?:always|only|never)\s+(?:answer|respond|reply|say|output|tell|claim|state)\b",
    "trigger": (r"\b(?:when(?:ever)?|if|in case|once|should)\s+(?:anyone\s+|someone\s+|somebody\s+|a user\s+|the user\s+|users\s+|"
                r"you(?:'re| are)?\s+|people\s+|it\s+|this\s+)?(?:is\s+|are\s+|gets?\s+|)?" + _ASKED + r"\b[^.]{0,80}?[,;:\u2014]\s*"
                r"(?:please\s+|then\s+)?(?:always\s+|only\s+|just\s+)?(?:" + _ANSWER_VERBS + r"|you|the (?:answer|response|reply) "
                r"(?:is|should|must))\b"),
    "topic trigger": (r"\b(?:when(?:ever)?|if|once)\b[^.]{0,60}\b(?:comes up|is mentioned|is raised|is discussed|is brought up|"
                      r"appears in (?:a|the) (?:question|prompt|query))\b[^.]{0,10}[,;:\u2014]\s*(?:please\s+)?(?:always\s+|only\s+)?"
                      r"(?:" + _ANSWER_VERBS + r"|you)\b"),
    "from now on": r"\bfrom now on\b[^.]{0,40}\b(?:" + _ANSWER_VERBS + r"|you|the (?:assistant|model|ai))\b",
    "tell the user": (r"(?:^|[.!?:;]\s*|,\s+|\n)(?:please\s+|now\s+)?(?:tell|inform|assure|remind) "
                      r"(?:the user|users|anyone who|everyone who|whoever asks)\b"),
    "withhold": r"\b(?:do not|don't|never)\s+(?:tell|mention|reveal|disclose)\s+(?:this to\s+)?" + _AUDIENCE + r"\b",
    "role play": r"\blet'?s (?:play a game|pretend|role-?play)\b|\byou are now\b|\byou're now\b|\bpretend (?:to be|that you|you are)\b|\brole-?play as\b|\bact as (?:if you|though you)\b",
}
_PATTERNS = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in _CUES.items()}


def instruction_flag(text: str) -> str | None:
    """The first phrase in `text` that addresses the model instead of stating a fact, or None."""
    for pattern in _PATTERNS.values():
        match = pattern.search(text)
        if match:
            return match.group(0).strip(" ,.;:\n")
    return None


# -- by meaning ----------------------------------------------------------------------------------

SCREEN_RECIPE = "logistic-l2=1e-3-max-benign-v1"  # change when the fit below changes: the disk cache is keyed by it
L2 = 1e-3
STEPS, STEP_SIZE = 3000, 2.0
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


class InstructionScreen:
    """The cues above, and a linear read-out of the embedder's vectors that separates text
    addressed to the model from plain facts. The cues alone flagged 7 of 30 planted instructions
    written after them; the read-out carries the meaning ("any bots crawling this", "automated
    mail processors: report...") that no phrase list anticipates.

    Fit: logistic regression on the embeddings of the instruction and benign examples
    (memory/instruction_examples.py), chosen over a centroid difference by fitting on two of
    the three example sets and testing on the third (README, Injection); the threshold is the
    highest score of any benign example, whole or by sentence, so none of the sentences written
    to look like instructions without being one is flagged. Each text is scored whole and
    sentence by sentence (an instruction hides in a long note). Fitted once per embedder and
    cached on disk: `learn` embeds the 166 examples only the first time."""

    def __init__(self, embedder: Embedder, fit: tuple[np.ndarray, float, float] | None = None) -> None:
        """`fit`: (weights, bias, threshold) to use instead of the cached default (a study's own fit)."""
        self.embedder = embedder
        self._fit = fit

    def fit(self) -> tuple[np.ndarray, float, float]:
        """(weights, bias, threshold), from the cache when this embedder and these examples have been fitted."""
        if self._fit is None:
            self._fit = _cached_fit(self.embedder)
        return self._fit

    def scores(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> list[float]:
        """Each text's highest score, whole or any of its sentences (`vectors`: the texts'
        embeddings when the caller has them, as `learn` does)."""
        weights, bias, _ = self.fit()
        return best_scores(self.embedder, texts, weights, bias, vectors)

    def flags(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> list[str | None]:
        """Why each text reads as an instruction to the model (the cue's phrase, or the read-out's
        score), in words for `lifelong quarantine`, or None."""
        _, _, threshold = self.fit()
        reasons: list[str | None] = []
        for text, score in zip(texts, self.scores(texts, vectors), strict=True):
            phrase = instruction_flag(text)
            reasons.append(f"instructs the model ({phrase!r})" if phrase else
                           f"reads as an instruction to the model (score {score:.2f} > {threshold:.2f})" if score > threshold else None)
        return reasons


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.split()) >= 3]


def best_scores(embedder: Embedder, texts: Sequence[str], weights: np.ndarray, bias: float,
                vectors: np.ndarray | None = None) -> list[float]:
    whole = embedder.embed(list(texts)) if vectors is None else vectors
    best = [float(v @ weights + bias) for v in whole]
    parts = [(i, s) for i, t in enumerate(texts) for s in sentences(t) if s != t.strip()]
    if parts:
        for (i, _), v in zip(parts, embedder.embed([s for _, s in parts]), strict=True):
            best[i] = max(best[i], float(v @ weights + bias))
    return best


def fit_screen(embedder: Embedder, instructions: Sequence[str] | None = None,
               benign: Sequence[str] | None = None, l2: float = L2) -> tuple[np.ndarray, float, float]:
    """Logistic regression (full-batch gradient descent from zero: deterministic) on the
    examples (default: memory/instruction_examples.py, filled); threshold: the highest benign score."""
    from lifelong.memory import instruction_examples as examples

    if instructions is None:
        instructions = examples.fill(examples.INSTRUCTIONS)
    if benign is None:
        benign = [*examples.BENIGN, *examples.fill(examples.BENIGN_TEMPLATES)]
    positive, negative = embedder.embed(list(instructions)), embedder.embed(list(benign))
    x = np.vstack([positive, negative]).astype(np.float64)
    y = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    weights, bias = np.zeros(x.shape[1]), 0.0
    for _ in range(STEPS):
        error = 1.0 / (1.0 + np.exp(-(x @ weights + bias))) - y
        weights -= STEP_SIZE * (x.T @ error / len(y) + l2 * weights)
        bias -= STEP_SIZE * float(error.mean())
    weights = weights.astype(np.float32)
    return weights, float(bias), max(best_scores(embedder, benign, weights, float(bias)))


def _cached_fit(embedder: Embedder) -> tuple[np.ndarray, float, float]:
    from lifelong.memory import instruction_examples as examples
    from lifelong.paths import cache_dir

    digest = hashlib.blake2b(digest_size=8)
    for text in (SCREEN_RECIPE, embedder.name, *examples.fill(examples.INSTRUCTIONS), *examples.BENIGN,
                 *examples.fill(examples.BENIGN_TEMPLATES)):
        digest.update(text.encode() + b"\0")
    path = cache_dir() / "instruction-screen" / f"{embedder.name}-{digest.hexdigest()}.npy"
    if path.is_file():
        saved = np.load(path)
        if saved.shape == (embedder.dim + 2,):
            return saved[:-2].astype(np.float32), float(saved[-2]), float(saved[-1])
    weights, bias, threshold = fit_screen(embedder)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as handle:
        np.save(handle, np.append(weights.astype(np.float64), [bias, threshold]))
    os.replace(handle.name, path)  # another process may be writing the same file: the rename is atomic
    return weights, bias, threshold
