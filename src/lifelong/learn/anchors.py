"""General text the module must leave alone, in two disjoint sets.

TRAINING anchors are what the `kl` strategy (and EWC's Fisher) pull the module back on; the
HELD-OUT anchors are what the gate's KL-drift metric is measured on. Keeping them disjoint
makes the metric an honest out-of-sample measure rather than the training objective read back.
Plain-text openings sit beside chat prompts because a module trained only on chat turns can
still bend raw completions ("The capital of France is" -> a new fact's words).
"""

from __future__ import annotations

# Held out: the gate's KL drift (and nothing else) is measured here.
HELD_OUT_CHAT = (
    "What is the capital of France?",
    "Explain photosynthesis in one sentence.",
    "Write a short greeting to a friend.",
    "What is 12 times 7?",
    "Name three primary colours.",
    "Who wrote Romeo and Juliet?",
    "Give me a tip for sleeping better.",
    "What is the boiling point of water?",
)
HELD_OUT_RAW = (
    "Once upon a time, there was a",
    "The recipe calls for two cups of",
    "In the morning, I usually",
    "The history of the Roman Empire",
    "Machine learning is a field of",
    "Dear Sir or Madam, I am writing to",
    "The city council announced that",
    "The most important thing about",
)

# Training: the KL penalty and the Fisher estimate use these.
TRAINING_CHAT = (
    "What is the largest country in South America?",
    "Summarise the plot of Cinderella in one sentence.",
    "How many minutes are in an hour?",
    "What does a thermometer measure?",
    "Translate 'thank you' into French.",
    "Who discovered penicillin?",
    "What is the chemical formula of water?",
    "Give two examples of mammals.",
    "Why do leaves change colour in autumn?",
    "What language is spoken in Germany?",
    "Write a haiku about rain.",
    "What is the square root of 81?",
    "Which continent is Egypt in?",
    "What is the main ingredient of guacamole?",
    "Who was Albert Einstein?",
    "How does a rainbow form?",
)
TRAINING_RAW = (
    "The river Nile flows through",
    "Albert Einstein was born in",
    "The human heart has four",
    "Shakespeare wrote many plays, including",
    "The Moon orbits the",
    "Mount Kilimanjaro is located in",
    "The programming language Python was created by",
    "The Amazon rainforest covers much of",
    "Water boils at a temperature of",
    "The first man to walk on the Moon was",
    "In 1492, Christopher Columbus",
    "The currency of Japan is the",
    "Photosynthesis is the process by which",
    "The Louvre is a museum in",
    "A week has seven days:",
    "The periodic table lists the",
)
