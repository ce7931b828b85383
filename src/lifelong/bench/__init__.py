"""Reproducible side-by-side studies: does the model learn, and what does it forget?

`lifelong bench STUDY...` runs studies on the same data, prompts and greedy decoding for every
arm (base, memory, naive fine-tune, lifelong sleep, lifelong + memory) and writes
results/<study>/<timestamp>/ with results.json, PNG plots and report.md.
"""
