"""Reproducible side-by-side studies: does the model learn, and what does it forget?

`lifelong bench STUDY...` runs studies on the same data, prompts and greedy decoding for every
arm (base, memory, naive fine-tune, lifelong sleep, lifelong + memory; cost and retrieval time
the sleep and the context layer instead) and writes
results/<study>/<timestamp>/ with results.json, PNG plots and report.md.
"""

# Full-run times on SmolLM2-135M and 2 CPU cores, for --help (kept free of heavy imports).
EXPECTED_FULL_RUN = {
    "acquisition-squad": "50 passages: single about 109 min, many about 75 min, implications about 73 min passage only plus about 143 min with implications (--squad-modes runs one: implications-passage, implications-extra for a single unit; --resume goes on after a stop)",
    "acquisition-facts": "100 facts: about 58 min with the routed arm alone (measured on a shared machine), the unrouted arm about 53 min more; its trained arms are shared with retention",
    "retention": "over an hour more with acquisition-facts on a shared machine (each memory arm answers about 1,000 items with retrieval), 75 min alone before sleep v2",
    "sequential": "10 sleeps of 10 facts, not yet measured (5 sleeps of 8 facts took about 34 min before sleep v2)",
    "cost": "about 13 min (15 facts)",
    "retrieval": "about 1 min",
    "citations": "about 20 min (300 questions asked one by one, measured)",
    "governance": "about 67 min alone (measured before the reference sleep, which adds a 30-fact sleep like the rebuild: 741 s in the 2026-12-04 run); five sleeps: 40 facts, their 30-fact rebuild, the 30 kept facts alone for reference, 10 facts beside 50 poisoned notes, 40 chat turns",
}
