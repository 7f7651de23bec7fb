"""Raw forward speed of each way the service can run the model, side by side in one process.

    python benchmarks/model_variants.py [--batches 1 16 32] [--seconds 2] [--compile]

Every variant is the shipped checkpoint behind app.serving.onnx_runner's runners (uint8 images in,
probabilities out), timed on the same real test images, rounds interleaved so drift on a
shared machine hits all alike. It also checks each variant's top-1 against the plain model.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from app.config import cpu_cores
from app.serving.onnx_runner import build_runner
from app.serving.runner import ModelOptions
from model.data.fashion_mnist import load_split
from model.network.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16, 32])
    p.add_argument("--seconds", type=float, default=2.0, help="timing per variant and batch")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow start)")
    args = p.parse_args()

    ckpt = load_checkpoint(args.checkpoint)
    cores = cpu_cores()
    variants = {
        "torch eager (as loaded)": ModelOptions("torch", cores, False, False),
        "torch + BN folded": ModelOptions("torch", cores, True, False),
        "torch + channels_last": ModelOptions("torch", cores, False, True),
        "torch + BN folded + channels_last": ModelOptions("torch", cores, True, True),
        "torch bf16 + folded + channels_last": ModelOptions("torch", cores, True, True, "bf16"),
        f"onnxruntime, {cores} threads": ModelOptions("onnxruntime", cores, precision="fp32"),
        "onnxruntime, 1 thread": ModelOptions("onnxruntime", 1, precision="fp32"),
        f"onnxruntime int8, {cores} threads": ModelOptions("onnxruntime", cores, precision="int8"),
        "onnxruntime int8, 1 thread": ModelOptions("onnxruntime", 1, precision="int8"),
    }
    if args.compile:
        variants["torch.compile + folded + channels_last"] = ModelOptions(
            "torch", cores, True, True, compile=True
        )
    test = load_split("test").images.numpy()
    runners = {}
    for name, options in variants.items():
        start = time.perf_counter()
        runner = build_runner(ckpt, "cpu", options)
        runner(test[:2])  # compiles, where compiling happens
        runners[name] = (runner, time.perf_counter() - start)
    reference = runners["torch eager (as loaded)"][0](test[:1000]).argmax(1)
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for b in args.batches:
            for name, (runner, _) in runners.items():
                # Thread counts are per process in torch; each variant gets its own back.
                torch.set_num_threads(variants[name].threads or cores)
                images = test[:b]
                runner(images)
                samples = []
                stop = time.perf_counter() + args.seconds / args.rounds
                while time.perf_counter() < stop or len(samples) < 3:
                    t = time.perf_counter()
                    runner(images)
                    samples.append(time.perf_counter() - t)
                times.setdefault((name, b), []).extend(samples)
    base = {b: statistics.median(times[("torch eager (as loaded)", b)]) for b in args.batches}
    header = " | ".join(f"batch {b}: ms (x eager)" for b in args.batches)
    print(f"torch {torch.__version__}, {cores} CPUs, {args.checkpoint}\n")
    print(f"| variant | start s | {header} | top-1 = eager (1,000 images) |")
    print("|---|---|" + "---|" * len(args.batches) + "---|")
    for name, (runner, start_s) in runners.items():
        torch.set_num_threads(variants[name].threads or cores)
        cells = []
        for b in args.batches:
            ms = statistics.median(times[(name, b)])
            cells.append(f"{ms * 1e3:.2f} ({base[b] / ms:.2f}x)")
        same = bool((runner(test[:1000]).argmax(1) == reference).all())
        print(f"| {name} | {start_s:.1f} | " + " | ".join(cells) + f" | {same} |")


if __name__ == "__main__":
    main()
