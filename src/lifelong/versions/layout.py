"""Names of the files a version folder keeps, in one light module: sleep writes them, and
forgetting, pruning and the benchmarks read them without importing the training stack."""

RETENTION_PROBES = "retention_probes.jsonl"  # in the mind folder: the base's completions the gate checks
TRAINING_DATA = "training_data.jsonl"
TRAINED_ON = "trained_on.jsonl"  # every text the module learned from, with its source and memory ids
ADAPTER = "adapter"
GATE_ANSWERS = "gate_answers.jsonl"  # the candidate's closed-book answers at its gate: memory id, probe hash, right or not
FORGOTTEN_MARKER = "forgotten.json"  # which forgotten memories took the module's weights with them
CHECKPOINT = "model"  # a merge version's folded weights (config, safetensors)
