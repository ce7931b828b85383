"""How long does opening a module library take as it grows? A sleep by topic opens the
active version's library for every topic it trains (the candidate holds the library beside its
new module, and the gate compares it with the parent), and `ask`, `chat` and `serve` open it
once per process, so a library that takes O(n^2) to open makes a long sleep O(n^3).

For each library size n, n LoRA modules of the default model's sleep shape (TrainConfig's
rank and target layers; random weights, cycling through a few saved adapters, since loading
time does not depend on the values) are loaded side by side onto a fresh weight-sharing copy
of the model, two ways, alternated:

- peft (the naive baseline, and the way until this benchmark): `PeftModel.from_pretrained`
  then `load_adapter` per module;
- lifelong: `model.adapter_loading.load_modules` (one adapted-layer walk, then each module's
  tensors put into those layers).

At the largest size both loaders ran, a mixed batch (rows on different modules and on the
base) must give identical logits, or the run fails. Writes results/library_loading/<time>/
results.json and library_loading.png.

    .venv/bin/python benchmarks/library_loading.py [--sizes 1,10,25,50,100] [--peft-up-to 100]

About 10 minutes on 2 CPU cores with the defaults, most of it PEFT's loads at 50 and 100.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import torch
from _common import machine_info, print_table, results_dir, write_json

from lifelong.bench.measure import release_memory, resident_bytes
from lifelong.learn.trainer import TrainConfig, attach_lora
from lifelong.model.adapter_loading import load_modules
from lifelong.model.language_model import LanguageModel, weight_sharing_copy
from lifelong.model.loader import load_model

LORA_B_STD = 0.02  # large enough that a module's rows answer differently from the base's


def save_random_modules(lm: LanguageModel, folder: Path, count: int) -> list[Path]:
    """`count` adapters of the sleep's shape with random weights, saved as a sleep saves one."""
    paths = []
    for index in range(count):
        peft = attach_lora(LanguageModel(weight_sharing_copy(lm.model), lm.tokenizer, lm.name, lm.needs_bos),
                           TrainConfig(seed=index))
        generator = torch.Generator().manual_seed(index)
        with torch.no_grad():
            for name, parameter in peft.named_parameters():
                if ".lora_B." in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * LORA_B_STD)
        paths.append(folder / f"module{index}")
        peft.save_pretrained(paths[-1])
    return paths


def library(saved: list[Path], size: int) -> dict[str, Path]:
    """`size` module names, each on one of the saved adapters in turn."""
    return {f"m{j}": saved[j % len(saved)] for j in range(size)}


def peft_load(lm: LanguageModel, adapters: dict[str, Path]) -> object:
    """The naive baseline: PEFT's own loader, one adapter after another."""
    from peft import PeftModel

    names = list(adapters)
    model = PeftModel.from_pretrained(weight_sharing_copy(lm.model), str(adapters[names[0]]), adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(str(adapters[name]), adapter_name=name)
    return model


def lifelong_load(lm: LanguageModel, adapters: dict[str, Path]) -> object:
    """What lifelong opens a library with."""
    return load_modules(weight_sharing_copy(lm.model), adapters)


LOADERS = {"peft": peft_load, "lifelong": lifelong_load}


def timed(loader: str, lm: LanguageModel, adapters: dict[str, Path]) -> tuple[dict[str, float], object]:
    """Wall seconds and resident memory added by one loader opening `adapters`, and its model."""
    release_memory()
    before = resident_bytes()
    start = time.perf_counter()
    model = LOADERS[loader](lm, adapters)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rss_increase_mib": (resident_bytes() - before) / 2**20}, model


def mixed_batch_logits(lm: LanguageModel, model: object, names: list[str]) -> torch.Tensor:
    """Logits of three rows on the first module, the base and the last module, in one batch."""
    prompts = ["Who wrote the novel about the lighthouse keeper?", "The capital of France is", "Tell me about her books."]
    batch = lm.tokenizer(prompts, return_tensors="pt", padding=True)
    rows = [names[0], "__base__", names[-1]]
    model.eval()
    with torch.no_grad():
        return model(**batch, adapter_names=rows).logits


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for loader, style in (("peft", "o--"), ("lifelong", "o-")):
        mine = [r for r in rows if r["loader"] == loader]
        left.plot([r["modules"] for r in mine], [r["seconds"] for r in mine], style, label=loader)
        right.plot([r["modules"] for r in mine], [r["seconds"] / r["modules"] for r in mine], style, label=loader)
    left.set(xlabel="modules in the library", ylabel="seconds to open it", title="Opening a module library")
    right.set(xlabel="modules in the library", ylabel="seconds per module", title="Cost per module")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10,25,50,100", help="library sizes, comma-separated")
    parser.add_argument("--peft-up-to", type=int, default=100, help="largest size the (slow) PEFT baseline runs at")
    parser.add_argument("--distinct", type=int, default=4, help="different saved adapters the library cycles through")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    if not sizes or sizes[0] < 1 or args.distinct < 1:
        parser.error("--sizes need to be positive integers and --distinct at least 1")

    out = results_dir("library_loading")
    lm = load_model()
    rows: list[dict] = []
    checked: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        saved = save_random_modules(lm, Path(folder), args.distinct)
        for size in sizes:
            adapters = library(saved, size)
            loaders = ["peft", "lifelong"] if size <= args.peft_up_to else ["lifelong"]
            if size % 2:  # alternate which goes first, so a slow spell of the machine does not pick one
                loaders.reverse()
            logits = {}
            for loader in loaders:
                row, model = timed(loader, lm, adapters)
                rows.append({"modules": size, "loader": loader, **row})
                print(f"{size:>4} modules, {loader:<8}: {row['seconds']:.2f} s, +{row['rss_increase_mib']:.0f} MiB", flush=True)
                if len(loaders) == 2 and size == min(max(sizes), args.peft_up_to):
                    logits[loader] = mixed_batch_logits(lm, model, list(adapters))
                del model
                gc.collect()
            if len(logits) == 2:
                checked = {"modules": size, "identical_logits": bool(torch.equal(logits["peft"], logits["lifelong"])),
                           "max_abs_difference": float((logits["peft"] - logits["lifelong"]).abs().max())}
                if not checked["identical_logits"]:
                    raise SystemExit(f"the two loaders' libraries of {size} modules answer differently: {checked}")

    table = []
    for size in sizes:
        by = {r["loader"]: r for r in rows if r["modules"] == size}
        peft, mine = by.get("peft"), by["lifelong"]
        table.append([size, f"{peft['seconds']:.2f}" if peft else "-", f"{mine['seconds']:.2f}",
                      f"{peft['seconds'] / mine['seconds']:.1f}x" if peft else "-", f"{mine['rss_increase_mib']:.0f}"])
    print_table("Opening a library of n modules", ["modules", "peft s", "lifelong s", "speed-up", "lifelong +MiB"], table)
    write_json(out / "results.json", {"study": "library_loading", "machine": machine_info(), "sizes": sizes,
                                      "distinct_adapters": args.distinct, "train_config": TrainConfig().to_dict(),
                                      "rows": rows, "equivalence": checked})
    plot(rows, out / "library_loading.png")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
