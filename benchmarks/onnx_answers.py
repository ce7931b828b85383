"""Do `ask`'s ONNX Runtime answers equal the torch model's, and how fast is each?

`ask` answers greedily on ONNX Runtime over the exported decoding step (model/onnx_export.py);
the gate, `serve` and sampling run the torch model. Both run fp32 arithmetic, summed in
different orders, so a near-tie between two tokens could in principle go either way. This
asks the first --questions TOFU dev questions closed-book, and the same with three TOFU notes
in the prompt (the question's own first), on both engines, one question at a time as `ask`
does, and counts the answers that are token for token identical, with each engine's decode time.

    .venv/bin/python benchmarks/onnx_answers.py --data ../shared/data [--questions 40] [--max-new-tokens 64]

Writes results/onnx_answers/<UTC timestamp>/results.json and onnx_answers.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import machine_info, print_table, results_dir, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared benchmark data folder")
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()

    from lifelong.memory.records import Memory
    from lifelong.model.greedy_decoding import greedy_decode
    from lifelong.model.language_model import left_padded
    from lifelong.model.loader import load_model
    from lifelong.model.onnx_model import OnnxLanguageModel, model_folder
    from lifelong.model.onnx_serving import export_answer_graph
    from lifelong.paths import cache_dir
    from lifelong.prompt import build_messages, closed_book

    rows = [json.loads(line) for line in (args.data / "tofu_authors_dev.jsonl").read_text().splitlines() if line.strip()]
    rows = rows[: args.questions]
    lm = load_model()
    export_answer_graph(lm.model, "smollm2-135m")
    folder = model_folder("smollm2-135m")
    onnx = OnnxLanguageModel(folder, folder.graph(cache_dir()))
    notes = [Memory(i + 1, r["answer"], "tofu", "user", "default", "fact", None, 0.0, 0.0, None, None, "") for i, r in enumerate(rows)]
    stops = lm.stop_ids()
    records = []
    for i, row in enumerate(rows):
        for setting, messages in (("closed-book", closed_book(row["question"])),
                                  ("three notes", build_messages(row["question"], [notes[i], notes[(i + 1) % len(rows)],
                                                                                   notes[(i + 2) % len(rows)]]))):
            ids = lm.encode(lm.format_chat(messages))
            assert ids == onnx.encode(onnx.format_chat(messages)), "the two engines' prompts differ"
            start = time.perf_counter()
            on_onnx = onnx.decoder.greedy(ids, args.max_new_tokens, stops)
            onnx_seconds = time.perf_counter() - start
            input_ids, mask = left_padded([ids], lm.tokenizer.pad_token_id)
            start = time.perf_counter()
            on_torch = greedy_decode(lm.model, input_ids, mask, args.max_new_tokens, stops)[0]
            torch_seconds = time.perf_counter() - start
            records.append({"question": row["question"], "setting": setting, "identical": on_onnx == on_torch,
                            "onnx_tokens": len(on_onnx), "torch_tokens": len(on_torch),
                            "onnx_seconds": onnx_seconds, "torch_seconds": torch_seconds,
                            **({} if on_onnx == on_torch else {"onnx": lm.tokenizer.decode(on_onnx), "torch": lm.tokenizer.decode(on_torch)})})
        print(f"{i + 1}/{len(rows)}: identical so far {sum(r['identical'] for r in records)} of {len(records)}")

    summary = {}
    for setting in ("closed-book", "three notes"):
        chosen = [r for r in records if r["setting"] == setting]
        summary[setting] = {"answers": len(chosen), "identical": sum(r["identical"] for r in chosen),
                            "onnx_seconds": sum(r["onnx_seconds"] for r in chosen),
                            "torch_seconds": sum(r["torch_seconds"] for r in chosen),
                            "tokens": sum(r["torch_tokens"] for r in chosen)}
    folder_out = results_dir("onnx_answers")
    write_json(folder_out / "results.json", {"study": "onnx_answers", "machine": machine_info(), "questions": len(rows),
                                             "max_new_tokens": args.max_new_tokens, "summary": summary, "records": records})
    print_table("ONNX Runtime against torch, greedy, one question at a time", ["setting", "identical", "onnx s", "torch s", "tokens"],
                [[k, f"{v['identical']} of {v['answers']}", f"{v['onnx_seconds']:.1f}", f"{v['torch_seconds']:.1f}", v["tokens"]]
                 for k, v in summary.items()])
    _plot(summary, folder_out / "onnx_answers.png")
    print(f"results: {folder_out}")


def _plot(summary: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(summary)
    fig, ax = plt.subplots(figsize=(6, 3))
    width = 0.38
    for offset, engine, colour in ((-width / 2, "onnx", "tab:blue"), (width / 2, "torch", "tab:gray")):
        ax.bar([i + offset for i in range(len(settings))], [summary[s][f"{engine}_seconds"] / summary[s]["answers"] for s in settings],
               width, label="ONNX Runtime" if engine == "onnx" else "torch", color=colour)
    ax.set_xticks(range(len(settings)), [f"{s}\n{summary[s]['identical']:.0f}/{summary[s]['answers']:.0f} identical" for s in settings])
    ax.set_ylabel("seconds per answer (decode)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
