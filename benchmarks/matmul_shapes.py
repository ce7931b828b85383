"""Do the default model's own matrix products reach this CPU's matmul peak?

The trainer's model FLOPs utilisation (bench/flops.py) divides its useful arithmetic by the peak
of one 2048^3 product. If SmolLM2-135M's narrow layers (576 wide, 1536 in the MLP, 192 for the
grouped keys and values) ran far below that peak, the MFU target would be capped by the shapes,
not by the trainer. This times each linear layer's forward product (x @ W^T, F.linear) and its
input-gradient product (dy @ W, what the backward pass computes for a frozen weight) at the row
counts a packed training batch has, in bf16 and fp32, beside the 2048^3 peak, best of --repeats.

    .venv/bin/python benchmarks/matmul_shapes.py [--rows 256,512,1024,2048] [--repeats 5]

Writes results/matmul_shapes/<UTC timestamp>/results.json and shapes.png.
"""

from __future__ import annotations

import argparse

import torch

from _common import machine_info, print_table, results_dir, speed_probe, write_json

from lifelong.bench.flops import matmul_gflops
from lifelong.learn.precision import best_seconds, linear_seconds

# (name, input width, output width) of SmolLM2-135M's linear layers (hidden 576, MLP 1536,
# 3 key-value heads of 64)
LAYERS = (("q/o 576x576", 576, 576), ("k/v 576x192", 576, 192), ("gate/up 576x1536", 576, 1536),
          ("down 1536x576", 1536, 576))


def gflops(rows: int, width: int, out: int, dtype: torch.dtype, repeats: int, backward: bool) -> float:
    """GFLOP/s of the forward product (rows x width) @ (width x out), or of the input gradient
    (rows x out) @ (out x width) with the (out x width) weight as stored, as autograd computes it."""
    if backward:
        grad, weight = torch.randn(rows, out, dtype=dtype), torch.randn(out, width, dtype=dtype)
        seconds = best_seconds(lambda: grad @ weight, repeats)
    else:
        seconds = linear_seconds(dtype, rows, width, out, repeats)
    return 2 * rows * width * out / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="256,512,1024,2048", help="rows per product (positions in a packed batch)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows_list = [int(r) for r in args.rows.split(",")]
    probe = speed_probe()
    results: dict[str, dict] = {}
    table = []
    for dtype_name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        peak = matmul_gflops(dtype, repeats=args.repeats)
        shapes = {}
        for name, width, out in LAYERS:
            for rows in rows_list:
                for direction in ("forward", "input gradient"):
                    rate = gflops(rows, width, out, dtype, args.repeats, backward=direction == "input gradient")
                    shapes[f"{name} {direction} rows {rows}"] = {"layer": name, "direction": direction, "rows": rows,
                                                                  "gflops": rate, "of_peak": rate / peak}
                    table.append([dtype_name, name, direction, str(rows), f"{rate:.0f}", f"{rate / peak:.2f}"])
        results[dtype_name] = {"peak_2048_gflops": peak, "shapes": shapes}
        table.append([dtype_name, "2048^3 peak", "forward", "2048", f"{peak:.0f}", "1.00"])
    print_table("the default model's matrix products against the 2048^3 peak",
                ["dtype", "layer", "product", "rows", "GFLOP/s", "of peak"], table)
    out = results_dir("matmul_shapes")
    write_json(out / "results.json", {"study": "matmul_shapes", "machine": machine_info(), "speed_probe": probe,
                                      "speed_probe_after": speed_probe(), "repeats": args.repeats, "results": results})
    plot(results, rows_list, out / "shapes.png")
    print(f"results: {out}")


def plot(results: dict, rows_list: list[int], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), sharey=False)
    for ax, (dtype_name, record) in zip(axes, results.items()):
        for name, _, _ in LAYERS:
            for direction, style in (("forward", "-o"), ("input gradient", "--s")):
                rates = [record["shapes"][f"{name} {direction} rows {r}"]["gflops"] for r in rows_list]
                ax.plot(rows_list, rates, style, label=f"{name} {direction}")
        ax.axhline(record["peak_2048_gflops"], color="black", linewidth=1, label="2048^3 peak")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("rows (positions in a packed batch)")
        ax.set_ylabel("GFLOP/s")
        ax.set_title(f"{dtype_name}: SmolLM2-135M's linear layers")
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
