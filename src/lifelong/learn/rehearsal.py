"""Pseudo-rehearsal (Robins 1995): replay the frozen model's own answers to general prompts.

Replaying earlier sleeps' examples protects what earlier sleeps taught; it does nothing for
what the base model knew before any sleep. Rehearsal examples fill that gap: general
questions answered greedily by the model the module is trained on, mixed into training so
the module keeps giving those answers. The prompts are disjoint from the KL anchors and from
the gate's probes. A few share a fact with public retention sets ("the largest ocean"), so
`lifelong bench retention` leaves such items out rather than let rehearsal grade itself.
"""

from __future__ import annotations

from lifelong.learn.synthesis import TrainingExample
from lifelong.model.language_model import LanguageModel
from lifelong.prompt import closed_book

REHEARSAL_PROMPTS = (
    "What is the capital of Italy?", "How many legs does a spider have?", "What colour is the sky on a clear day?",
    "Who painted the Mona Lisa?", "What is the largest ocean on Earth?", "What gas do plants absorb from the air?",
    "How many days are in a week?", "What is the main language spoken in Brazil?", "What do bees collect from flowers?",
    "Name a fruit that is yellow.", "What is 9 plus 6?", "What is the tallest mountain in the world?",
    "Which metal is liquid at room temperature?", "What instrument has 88 keys?", "What is the opposite of cold?",
    "How do you say hello in Spanish?", "What is ice made of?", "Write one sentence about the sea.",
    "Give me a word that rhymes with cat.", "What animal is known as the king of the jungle?",
    "Suggest a name for a pet dog.", "What do you call a baby cat?", "What is the freezing point of water in Fahrenheit?",
    "Describe a tree in one sentence.",
)


def rehearsal_examples(lm: LanguageModel, max_new_tokens: int = 40) -> list[TrainingExample]:
    prompts = [closed_book(p) for p in REHEARSAL_PROMPTS]
    answers = lm.generate_batch(prompts, max_new_tokens=max_new_tokens)
    return [TrainingExample(prompt, answer, (), "rehearsal") for prompt, answer in zip(prompts, answers, strict=True) if answer]


def base_rehearsal(lm: LanguageModel) -> list[TrainingExample]:
    """The frozen model's rehearsal examples, generated once per model and process."""
    return lm.memo("rehearsal examples", lambda: rehearsal_examples(lm))
