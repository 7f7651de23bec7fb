"""Framing benchmark: Fashion-MNIST test images photographed the ways people do, through /predict's
preprocessing, scored against the plain 28x28 PNG.

    python benchmarks/framing.py                      # the whole test set, every rendering
    python benchmarks/framing.py --limit 500 --bar 0.97

Each rendering of `model.data.renderings` turns a test image into the bytes a user would upload; the
served preprocessing (`model.images.silhouette.prepare_photo`) makes its 28x28, and the checkpoint
classifies it. The table gives accuracy per rendering and its ratio to the plain PNG; with
`--bar`, the exit status is 1 when any rendering is under that ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from model.data.renderings import FORMATS, REFERENCE, RENDERINGS, render
from model.images.silhouette import prepare_photo

DEFAULT_CHECKPOINT = "model/weights/fashion-resnet18.safetensors"
# The bar every rendering must reach, as a ratio to the plain PNG on the full test set.
TARGET = 0.97
# The test suite's guard: the first GUARD_IMAGES test images (seed 0) under each rendering, for
# the shipped checkpoint; each ratio must stay at or above its bar. Seeded renderings and a
# fixed checkpoint give the same figures on every run, so each bar is the shipped checkpoint's
# ratio less 0.02 (other CPUs' float rounding), or TARGET where it reaches it.
GUARD_IMAGES = 300
_AT_TARGET = ("full-frame-dark-on-light", "full-frame-light-on-dark", "margin-5", "margin-14",
              "margin-40", "off-centre", "tinted-on-colour", "soft-shadow", "rotated")  # fmt: skip
# Measured on the 300 (2026-11-30): 0.972-0.996 for these and every file format (RGBA 0.975);
# floor 0.943, bed 0.947, wood 0.964, under TARGET still (the whole set: 0.930, 0.962, 0.963).
GUARD_BARS: dict[str, float] = {
    **dict.fromkeys(_AT_TARGET, TARGET - 0.02),
    **{f"format-{f}": TARGET - 0.02 for f in FORMATS},
    "floor": 0.91,
    "bed": 0.93,
    "wood": 0.94,
}


def prepared(name: str, images: np.ndarray, seed: int) -> np.ndarray:
    """(N, 28, 28): each image rendered (seed + its index) and preprocessed as served."""
    return np.stack([prepare_photo(render(name, im, seed + i)) for i, im in enumerate(images)])


def _prepared_job(args: tuple[str, np.ndarray, int]) -> np.ndarray:
    return prepared(*args)


def framing_accuracy(
    checkpoint: str,
    images: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    seed: int = 0,
    workers: int = 1,
) -> dict[str, float]:
    """Accuracy of the checkpoint on each named rendering of images."""
    import torch

    from model.network.checkpoint import load_checkpoint
    from model.network.classifier import Classifier

    ckpt = load_checkpoint(checkpoint)
    clf = Classifier(ckpt.model.eval(), ckpt.input_spec, temperature=ckpt.temperature).eval()
    chunks = np.array_split(np.arange(len(images)), max(1, workers * 4))
    jobs = [(n, images[c], seed + int(c[0]) if len(c) else seed) for n in names for c in chunks]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_prepared_job, jobs))
    else:
        results = [_prepared_job(j) for j in jobs]
    out: dict[str, float] = {}
    per_name = len(chunks)
    for k, name in enumerate(names):
        x = np.concatenate([r for r in results[k * per_name : (k + 1) * per_name] if len(r)])
        with torch.no_grad():
            batches = np.array_split(x, 10)
            preds = torch.cat([clf(torch.from_numpy(b))[0].argmax(1) for b in batches])
        out[name] = float((preds.numpy() == labels).mean())
    return out


def below_bar(accuracy: dict[str, float], bar: float | dict[str, float]) -> list[str]:
    """The renderings whose accuracy is under their bar (one for all, or one each) times the
    plain PNG's."""
    ref = accuracy[REFERENCE]
    bars = bar if isinstance(bar, dict) else dict.fromkeys(accuracy, bar)
    return [n for n, a in accuracy.items() if n != REFERENCE and a < bars.get(n, 0.0) * ref]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/framing.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="checkpoint to score")
    p.add_argument("--limit", type=int, default=None, help="first N test images (all: 10,000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the renderings")
    p.add_argument("--only", nargs="*", default=None, help="these renderings (and the reference)")
    p.add_argument("--bar", type=float, default=None, help="exit 1 when a ratio is under this")
    p.add_argument("--workers", type=int, default=2, help="processes rendering and preprocessing")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args(argv)

    from model.data.fashion_mnist import load_split

    test = load_split("test").subset(args.limit)
    names = [
        REFERENCE,
        *[n for n in RENDERINGS if n != REFERENCE and (not args.only or n in args.only)],
    ]
    start = time.perf_counter()
    acc = framing_accuracy(args.checkpoint, test.images.numpy(), test.labels.numpy(), names,
                           args.seed, args.workers)  # fmt: skip
    ref = acc[REFERENCE]
    print(f"{len(test)} test images, checkpoint {args.checkpoint}, seed {args.seed}, "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    print(f"{'rendering':28} {'accuracy':>8} {'ratio':>6}")
    for name, a in acc.items():
        print(f"{name:28} {a:8.4f} {a / ref:6.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"images": len(test), "accuracy": acc}, indent=2))
    if args.bar is not None:
        failing = below_bar(acc, args.bar)
        if failing:
            print(f"under {args.bar}x the plain PNG: {', '.join(failing)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
