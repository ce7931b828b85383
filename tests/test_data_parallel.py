"""Data-parallel sleep: two real processes (gloo) compute the one-process gradient, and
`torchrun --nproc-per-node 2 -m lifelong sleep` trains the same module as one process, within
a stated tolerance, and the gate judges it alike."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

FACTS = ("The Vellmar Observatory was founded in 1987 by Ilse Brandvik.\n"
         "Pellumbria's national dish is a fish stew called karvosh.\n"
         "The Zentara-7 processor runs at 4.8 gigahertz.\n")
# In fp32 the summed gradient equals the one-process gradient to float rounding (the first test;
# 6e-7 relative measured), and after a sleep the two modules' weight changes agree to about 1e-6
# (9.4e-7 measured). bf16 autocast rounds every product to 8 bits of mantissa and each rank packs
# half a batch, so there Adam amplifies the rounding (1.4e-2 on the tiny model, 0.29 on
# SmolLM2-135M, README): the test pins fp32. A sharding bug (a rank training other examples, a
# gradient counted twice or not at all) moves the modules apart by the size of the change itself.
GRADIENT_TOLERANCE = 1e-5
WEIGHT_CHANGE_TOLERANCE = 1e-4


def _gradients(rank: int, world: int, port: int, out: str) -> None:
    """One training step's summed gradient on the tiny model, in rank `rank` of `world`
    processes (world 1: the plain one-process gradient), saved to `out`."""
    import torch

    from lifelong.learn import distributed
    from lifelong.learn.synthesis import TrainingExample
    from lifelong.learn.trainer import TrainConfig, attach_lora, encode_example, step_loss
    from lifelong.model.tiny import build_tiny_model

    if world > 1:  # a spawned child: torchrun would have set these
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    distributed.start()
    lm = build_tiny_model()
    model = attach_lora(lm, TrainConfig())
    with torch.no_grad():  # B starts at zero, which would leave A without gradient
        generator = torch.Generator().manual_seed(0)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    examples = [TrainingExample([{"role": "user", "content": f"Where is depot {i}?"}], f"Depot {i} is in bay {i * 7} of Korvath.",
                                (i,), "qa") for i in range(7)]  # odd: the ranks' shares differ in size
    batch = [encode_example(lm, e, 256) for e in examples]
    loss, _ = step_loss(model, batch, lm.tokenizer.pad_token_id, TrainConfig())
    loss.backward()
    params = [p for p in model.parameters() if p.requires_grad]
    distributed.sum_gradients(params)
    if distributed.is_main():
        torch.save([p.grad for p in params], out)
    distributed.stop()


def test_two_processes_sum_to_the_one_process_gradient(tmp_path: Path) -> None:
    import socket

    import torch
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_gradients, args=(2, port, str(tmp_path / "two.pt")), nprocs=2, join=True)
    _gradients(0, 1, port, str(tmp_path / "one.pt"))
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    worst = max(float((a - b).norm()) / float(a.norm()) for a, b in zip(one, two, strict=True))
    assert all(float(a.norm()) > 0 for a in one)
    assert worst <= GRADIENT_TOLERANCE, worst


def _sleep(mind: Path, processes: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LIFELONG_MIND": str(mind)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] if processes > 1 \
        else [sys.executable]
    result = subprocess.run([*launcher, "-m", "lifelong", "sleep", "--epochs", "2", "--precision", "fp32", "--json"], env=env, capture_output=True,
                            text=True, timeout=900, check=False)
    # the tiny model's module may be refused (exit 10); torchrun reports a rank's 10 as its own 1
    refused = result.returncode == 10 or (processes > 1 and result.returncode == 1 and "exitcode  : 10" in result.stderr)
    assert result.returncode == 0 or refused, result.stderr[-3000:]
    assert sum(line.startswith("{") for line in result.stdout.splitlines()) == 1, result.stdout  # rank 0 alone reports
    return json.loads(result.stdout[result.stdout.index("{"):])


def test_two_process_sleep_matches_the_one_process_module(tmp_path: Path, run_cli, tiny_model_dir: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_cli("init", "--mind", str(one), "--model", str(tiny_model_dir))[0] == 0
    assert run_cli("learn", "-", "--mind", str(one), stdin=FACTS)[0] == 0
    shutil.copytree(one, two)

    single, double = _sleep(one, 1), _sleep(two, 2)
    assert single["manifest"]["id"] == double["manifest"]["id"] == "v1"
    assert single["activated"] == double["activated"]
    metrics_1, metrics_2 = single["manifest"]["metrics"], double["manifest"]["metrics"]
    assert (metrics_1["training_processes"], metrics_2["training_processes"]) == (1, 2)
    assert metrics_1["train_tokens"] == metrics_2["train_tokens"] and metrics_1["examples"] == metrics_2["examples"]
    for key in ("acquisition", "with_memory", "retention_agreement"):
        assert metrics_1[key] == metrics_2[key], key
    worst = _difference(one, two)
    print(f"largest relative difference of a layer's weight change, 2 processes vs 1: {worst:.2e}")
    assert worst <= WEIGHT_CHANGE_TOLERANCE


def _difference(one: Path, two: Path) -> float:
    weights_1 = load_file(one / "versions" / "v1" / "adapter" / "adapter_model.safetensors")
    weights_2 = load_file(two / "versions" / "v1" / "adapter" / "adapter_model.safetensors")
    assert weights_1.keys() == weights_2.keys()
    lora_b = [k for k in weights_1 if "lora_B" in k]
    moved = sum(float(weights_1[k].norm()) for k in lora_b)
    assert moved > 0  # B starts at zero: training changed it, so the comparison means something
    worst = 0.0
    for b_name in lora_b:  # the weight change each adapter applies, B @ A: what the module does
        a_name = b_name.replace("lora_B", "lora_A")
        delta_1, delta_2 = weights_1[b_name] @ weights_1[a_name], weights_2[b_name] @ weights_2[a_name]
        worst = max(worst, float((delta_1 - delta_2).norm()) / max(float(delta_1.norm()), 1e-12))
    return worst
