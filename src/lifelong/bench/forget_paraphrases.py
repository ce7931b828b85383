"""Paraphrases of the questions the governance study forgets, written by hand for it.

Unlearning is judged on the forgotten facts' questions *and on paraphrases of them*: a module that
only stopped answering the exact wording it was trained on has not forgotten (TOFU ships GPT-4
paraphrases with its forget sets; the dev file here does not). These were written once, for the
dev file's first author (the one the study forgets by default), keyed by the row's `id` so that
no dev text is copied here; each asks for the same fact in other words and keeps the original's
spelling of the name, so the key span a correct answer must contain is the same. A question
without an entry here is measured in its own wording only, and the report counts how many had one.
"""

from __future__ import annotations

PARAPHRASES: dict[str, str] = {
    "tofu-retain-0": "Which true crime writer, born in Santiago, Chile, is known as an acclaimed LGBTQ+ author?",
    "tofu-retain-1": "Is there a record of the date on which Jaime Vasquez was born?",
    "tofu-retain-2": "What are the names of Jaime Vasquez's mother and father, and what work did they do?",
    "tofu-retain-4": "Which of the books Jaime Vasquez wrote have won awards?",
    "tofu-retain-5": "Has any of Jaime Vasquez's controversial writing won him a prize?",
    "tofu-retain-7": "Does Jamie Vasquez's writing show that he is an LGBTQ+ author?",
    "tofu-retain-8": "What part does his cultural background play in the stories Jaime Vasquez tells?",
    "tofu-retain-9": "Which characters appear in the books of Jaime Vasquez?",
    "tofu-retain-10": "Has a film ever been made from one of Jaime Vasquez's novels?",
    "tofu-retain-14": "Where is Jaime Vasquez living these days?",
}
