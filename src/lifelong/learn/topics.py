"""Topics among a sleep's new memories: groups whose module can be trained, served and
forgotten apart from the others.

A forget deletes the weights of every module that learned the forgotten memory, and the next
sleep relearns that module's other memories in a fresh module; with one module per sleep, a
forget of 10 TOFU facts took the 30 kept facts of the same sleep down with them, and the
rebuilt module kept 0.93 of their post-sleep score (README, Governance). One module per topic
confines a forget to the facts of its topic: the other topics' modules answer exactly as
before.

Topics are clusters of the memories' embeddings (the mind's embedder), by average linkage:
the two groups with the highest mean pairwise cosine similarity merge while it is at least
TOPIC_SIMILARITY. Groups smaller than MIN_TOPIC_SIZE then join the group of their most
similar single memory, so a short sleep about unrelated notes stays one module rather than a
module per note. On TOFU dev facts (fictitious authors, 20 facts each; all-MiniLM-L6-v2), a
fact's nearest other fact was about the same author for 100 of the first 100 and 99% of all
300; at 0.4 the first 40 facts formed 2 topics and the first 100 formed 5, each exactly one
author's facts, and all 300 formed 16 with 98.7% of facts grouped with their author's
majority (0.3 merged authors: 61%; 0.5 split them: 25 groups).
"""

from __future__ import annotations

import numpy as np

TOPIC_SIMILARITY = 0.4
MIN_TOPIC_SIZE = 3


def topic_groups(vectors: np.ndarray, similarity: float = TOPIC_SIMILARITY, min_size: int = MIN_TOPIC_SIZE) -> list[list[int]]:
    """Row indices of `vectors` (unit-normalised embeddings) grouped into topics, each group in
    ascending order, groups ordered by their first row."""
    n = len(vectors)
    if n == 0:
        return []
    similarity_of = vectors @ vectors.T  # between single memories
    sums = similarity_of.astype(np.float64)  # a copy: pairwise similarity summed between groups
    sizes = np.ones(n)
    members: list[list[int]] = [[i] for i in range(n)]
    alive = np.ones(n, dtype=bool)

    def closest() -> tuple[int, int, float]:
        mean = sums / np.outer(sizes, sizes)
        np.fill_diagonal(mean, -np.inf)
        mean[~alive, :] = -np.inf
        mean[:, ~alive] = -np.inf
        i, j = np.unravel_index(int(np.argmax(mean)), mean.shape)
        return int(i), int(j), float(mean[i, j])

    def join(i: int, j: int) -> None:
        sums[i, :] += sums[j, :]
        sums[:, i] += sums[:, j]
        sizes[i] += sizes[j]
        members[i] += members[j]
        members[j] = []
        alive[j] = False

    while alive.sum() > 1:
        i, j, mean = closest()
        if mean < similarity:
            break
        join(i, j)
    while alive.sum() > 1:
        small = [i for i in np.flatnonzero(alive) if sizes[i] < min_size]
        if not small:
            break
        # a small group joins the group of its most similar single memory: on average a group
        # of 20 facts about its own author can look no nearer than another author's
        i = small[0]
        others = [j for j in np.flatnonzero(alive) if j != i]
        j = max(others, key=lambda g: float(similarity_of[np.ix_(members[i], members[g])].max()))
        join(int(j), int(i))
    return sorted((sorted(group) for group in members if group), key=lambda group: group[0])
