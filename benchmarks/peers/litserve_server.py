"""LitServe serving the shipped network, the way LitServe's docs write a LitAPI.

    .venv-peers/bin/python benchmarks/peers/litserve_server.py --port 8002 [--max-batch-size 8]

Runs in .venv-peers (built by serve_load.py --peers). It imports the service's network and photo
preprocessing, so the benchmark compares servers, not pipelines. POST /predict with multipart
field "image", as the service takes it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import litserve as ls
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from model.images.silhouette import prepare_photo, to_model_input  # noqa: E402
from model.network.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint  # noqa: E402


class FashionAPI(ls.LitAPI):
    """decode_request -> (batch) -> predict -> (unbatch) -> encode_response."""

    def setup(self, device: str) -> None:
        threads = int(os.environ.get("PEER_THREADS", "0"))
        if threads:
            torch.set_num_threads(threads)
        self.ckpt = load_checkpoint(os.environ.get("MODEL_CHECKPOINT", SHIPPED_CHECKPOINT))

    # No annotation on `request`: LitServe reads it to choose how to parse the body, and the
    # plain form is the one that hands over the parsed multipart form.
    def decode_request(self, request) -> torch.Tensor:  # type: ignore[no-untyped-def]
        return torch.from_numpy(prepare_photo(request["image"].file.read()))

    def batch(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(inputs)

    @torch.inference_mode()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        single = images.ndim == 2  # max_batch_size 1: LitServe passes one image, unbatched
        x = images[None] if single else images
        ckpt = self.ckpt
        probs = ckpt.model(to_model_input(x, ckpt.input_size, ckpt.mean, ckpt.std)).softmax(1)
        return probs[0] if single else probs

    def unbatch(self, output: torch.Tensor) -> list[torch.Tensor]:
        return list(output)

    def encode_response(self, probs: torch.Tensor) -> dict[str, object]:
        i = int(probs.argmax())
        return {"label": self.ckpt.class_names[i], "confidence": float(probs[i])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8002)
    p.add_argument("--max-batch-size", type=int, default=1)
    p.add_argument("--batch-timeout", type=float, default=0.005, help="seconds")
    p.add_argument("--workers", type=int, default=1, help="inference workers on the CPU")
    args = p.parse_args()
    api = FashionAPI(max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=args.workers)
    server.run(host=args.host, port=args.port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
