"""Deletion test of the served saliency: does blanking where it points hurt the answer most?

    python benchmarks/saliency.py                 # the whole Fashion-MNIST test set
    python benchmarks/saliency.py --limit 200 --bar 2

For each test image, the occlusion saliency that /predict?explain=true returns
(model.network.saliency,
run on the backend the service would run here: INT8 or float ONNX, or torch); then the 20 % of
pixels with the highest saliency are blanked, and separately 20 % random pixels (seeded). The
figure is how much further the predicted class's probability falls on average for the first
than for the second. With `--bar`, the exit status is 1 when the ratio is under it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.serving.engine import build_engine  # noqa: E402
from app.serving.runner import cpu_flags  # noqa: E402
from model.network.checkpoint_info import read_checkpoint_info  # noqa: E402
from model.network.saliency import Forward, deletion_falls  # noqa: E402

# The bar: the salient pixels' fall at least this many times the random pixels'.
TARGET = 2.0
CHUNK = 2_000  # images a forward pass takes at most here (memory, not speed)


def served_forward(checkpoint: str | None = None) -> tuple[Forward, str]:
    """The forward pass the service would run on this machine, and its backend's name."""
    settings = Settings(**({"model_checkpoint": checkpoint} if checkpoint else {}))
    engine = build_engine(settings, read_checkpoint_info(settings.model_checkpoint), "cpu")

    def forward(images: np.ndarray) -> np.ndarray:
        parts = [engine.forward(images[i : i + CHUNK]).probs for i in range(0, len(images), CHUNK)]
        return np.concatenate(parts)

    return forward, engine.runner.name


def deletion_ratio(
    forward: Forward,
    images: np.ndarray,
    fraction: float = 0.2,
    saliency: np.ndarray | None = None,
) -> dict[str, float]:
    """The mean falls (salient, random) and their ratio, over images taken 500 at a time; the
    saliency is occlusion's unless given."""
    salient, random = [], []
    for i in range(0, len(images), 500):
        given = None if saliency is None else saliency[i : i + 500]
        s, r = deletion_falls(forward, images[i : i + 500], fraction, seed=i, saliency=given)
        salient.append(s)
        random.append(r)
    s_mean = float(np.concatenate(salient).mean())
    r_mean = float(np.concatenate(random).mean())
    return {"salient_fall": s_mean, "random_fall": r_mean, "ratio": s_mean / r_mean}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/saliency.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the service's)")
    p.add_argument("--limit", type=int, default=None, help="first N test images (all: 10,000)")
    p.add_argument("--fraction", type=float, default=0.2, help="share of pixels blanked")
    p.add_argument("--bar", type=float, default=None, help="exit 1 when the ratio is under this")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args(argv)

    from model.data.fashion_mnist import load_split

    images = load_split("test").subset(args.limit).images.numpy()
    forward, backend = served_forward(args.checkpoint)
    start = time.perf_counter()
    figures = deletion_ratio(forward, images, args.fraction)
    flags = " ".join(sorted(f for f in cpu_flags() if f.startswith(("avx", "amx")))) or "none"
    print(f"{len(images)} test images, {backend}, {time.perf_counter() - start:.0f} s; "
          f"CPU flags: {flags}")  # fmt: skip
    salient, random = figures["salient_fall"], figures["random_fall"]
    print(f"blanking {args.fraction:.0%} of pixels, the predicted class's probability falls by "
          f"{salient:.4f} where the saliency is highest, {random:.4f} at random: "
          f"{figures['ratio']:.2f}x")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"images": len(images), **figures}, indent=2))
    if args.bar is not None and figures["ratio"] < args.bar:
        print(f"under the bar of {args.bar}x", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
