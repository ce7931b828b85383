"""The modules layer: synthesise training data from memories and train LoRA modules on it."""
