"""The service against TorchServe + ONNX Runtime on the same graph, in paired rounds.

    python benchmarks/versus_peer.py [--rounds 3] [--duration 10] [--concurrency 1 8 32]

The like-for-like comparison: TorchServe's Java frontend and its Python worker running the very
ONNX graph the service runs here (benchmarks/peers/torchserve_ort_handler.py; float32 or INT8,
whichever the service chose for this CPU). For each concurrency the peer's fastest configuration
(benchmarks/peer_servers.TORCHSERVE_ORT_CONFIGS: workers, ORT threads, batch, delay) is found by
a short run of each, then the service and the peer take turns, `rounds` times, on the 28x28
Fashion-MNIST PNG; the in-process ceiling (the graph at batch 1, as served) is timed beside each
service run. It prints every round and the median ratio; the JSON holds all of it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.http.factory import CPU_FLAGS_LOGGED  # noqa: E402
from app.serving.onnx_runner import choose_cpu_precision  # noqa: E402
from app.serving.runner import cpu_flags  # noqa: E402
from benchmarks.peer_servers import (  # noqa: E402
    TORCHSERVE_ORT_CONFIGS,
    PeerConfig,
    peer_venv,
    torchserve_ort,
    versions,
)
from benchmarks.serve_load import (  # noqa: E402
    Driver,
    RawModel,
    Upload,
    best_config,
    fashion_mnist_png,
    multipart,
    server,
)
from model.network.checkpoint_info import graph_file, read_checkpoint_info  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="service/peer turns per concurrency")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each run")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    p.add_argument("--json", type=Path, default=ROOT / "runs" / "versus_peer.json")
    args = p.parse_args()
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"

    settings = Settings()
    ckpt = read_checkpoint_info(settings.model_checkpoint)
    precision, why = choose_cpu_precision(settings.model_precision, ckpt)
    os.environ["PEER_GRAPH"] = str(graph_file(settings.model_checkpoint, precision))
    flags = sorted(cpu_flags().intersection(CPU_FLAGS_LOGGED))
    print(f"graph: {precision} ({why}); CPU flags {' '.join(flags) or 'none of note'}; "
          f"{os.cpu_count()} CPUs; load from {generator}", flush=True)  # fmt: skip
    png = multipart("fmnist-28.png", "fmnist.png", "image/png", fashion_mnist_png())
    driver = Driver(generator, args.warmup, args.duration, RawModel(settings, 1.0))
    python = peer_venv()
    report: dict[str, object] = {}
    with server("app.serve", "/health/ready", {}, []) as (base, pid):
        for c in args.concurrency:
            config, tuning = best_at(driver, python, png, c)
            rounds = []
            with torchserve_ort(python, config, png.body, png.content_type) as (url, peer_pid):
                for _ in range(args.rounds):
                    us = driver.load("service", base + png.path, pid, png, c, service=True)
                    peer = driver.load("ts+ort", url, peer_pid, png, c, service=False)
                    rounds.append({"us": us.__dict__, "peer": peer.__dict__,
                                   "ratio": round(us.rps / peer.rps, 3)})  # fmt: skip
            ratios = [r["ratio"] for r in rounds]
            report[f"c={c}"] = {
                "peer_config": str(config),
                "peer_tuning_rps": tuning,
                "rounds": rounds,
                "median_ratio": statistics.median(ratios),
                "lowest_ratio": min(ratios),
            }
            print(f"c={c}: ratios {ratios}, median {statistics.median(ratios):.2f}x, lowest "
                  f"{min(ratios):.2f}x (peer: {config})", flush=True)  # fmt: skip
    report["meta"] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "cpu_flags": flags,
        "graph": precision,
        "generator": generator,
        "duration_s": args.duration,
        "peers": versions(python),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {args.json}")


def best_at(
    driver: Driver, python: Path, png: Upload, c: int
) -> tuple[PeerConfig, dict[str, float]]:
    """The peer's fastest configuration at concurrency c (batching only pays under load)."""
    configs = tuple(k for k in TORCHSERVE_ORT_CONFIGS if c > 1 or k.batch == 1)
    return best_config(driver, "ts+ort", torchserve_ort, configs, python, png, c)


if __name__ == "__main__":
    main()
