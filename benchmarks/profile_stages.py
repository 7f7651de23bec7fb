"""Where the service's CPU goes under load: core-milliseconds per request, by stage.

    python benchmarks/profile_stages.py [--concurrency 32] [--duration 10] [--input fmnist]

It starts the service (`python -m app.serve`), loads it with `wrk` (or the Python client), and
samples every thread of it and of its decoding process with py-spy (`--nonblocking`, so the
process is never paused) for the measured run. Each on-CPU sample is put in one stage by the
innermost frame that names one (STAGES, in order: the first rule a frame matches wins); samples
per stage / rate / requests = core-milliseconds per request. The process group's CPU time from
/proc is printed beside the sampled total, as the check that the samples cover it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.peer_servers import group_cpu  # noqa: E402
from benchmarks.serve_load import (  # noqa: E402
    DEFAULT_PHOTO,
    Driver,
    fashion_mnist_png,
    multipart,
    server,
)

# (stage, substrings of a frame "function (file:line)"): a sample goes to the first stage whose
# substring is in its innermost frame that matches any; frames are read from the leaf outwards.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("inference", ("onnxruntime", "torch/", "Runner.__call__", "InferenceEngine.forward")),
    ("preprocess", ("model/images/silhouette", "cv2")),
    ("decode", ("PIL/", "model/images/decode", "app/serving/decode", "photo_worker")),
    ("multipart", ("app/protocol/multipart", "app/protocol/uploads", "app/http/body")),
    ("answer (JSON)", ("app/protocol/answers", "json/", "pydantic", "JSONResponse", "render")),
    ("metrics", ("prometheus_client", "app/metrics", "request_metrics")),
    ("admission", ("app/serving/admission",)),
    ("batching hand-off", ("app/serving/engine", "app/serving/pipeline", "concurrent/futures")),
    ("HTTP accept/parse/write", ("uvicorn/", "httptools", "selector_events", "socket")),
    ("routing, middleware, deps", ("starlette/", "fastapi/", "app/http/")),
    ("event loop", ("asyncio/", "selectors", "threading")),
)


def stage_of(frames: list[str]) -> str:
    """The stage of one sample, its frames root first."""
    for frame in reversed(frames):
        for stage, marks in STAGES:
            if any(mark in frame for mark in marks):
                return stage
    return "other"


def profile(raw: Path) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """(samples per stage, samples per thread name) of py-spy's raw output."""
    stages: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        stages[stage_of(frames)] += int(count)
        inference = any("InferenceEngine._serve" in f for f in frames)
        threads["inference thread" if inference else "other threads"] += int(count)
    return stages, threads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=10.0, help="seconds sampled under load")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--input", choices=["fmnist", "photo"], default="fmnist")
    p.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    p.add_argument("--json", type=Path, default=ROOT / "runs" / "profile_stages.json")
    args = p.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("profile_stages: py-spy is needed (pip install py-spy; in `.[dev]`)")
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    if args.input == "fmnist":
        upload = multipart("fmnist-28.png", "fmnist.png", "image/png", fashion_mnist_png())
    else:
        upload = multipart(
            "photo-jpg", DEFAULT_PHOTO.name, "image/jpeg", DEFAULT_PHOTO.read_bytes()
        )
    driver = Driver(generator, 3.0, args.duration, None)
    with (
        server("app.serve", "/health/ready", {}, []) as (base, pid),
        tempfile.TemporaryDirectory() as tmp,
    ):
        url = base + upload.path
        driver.run(url, upload, args.concurrency, 3.0)  # warm-up
        raw = Path(tmp, "profile.txt")
        cmd = [spy, "record", "--pid", str(pid), "--rate", str(args.rate), "--nonblocking",
               "--subprocesses", "--format", "raw", "--output", str(raw),
               "--duration", str(int(args.duration) + 2)]  # fmt: skip
        sampler = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        cpu = group_cpu(pid)
        r = driver.run(url, upload, args.concurrency, args.duration)
        cpu = group_cpu(pid) - cpu
        _, err = sampler.communicate(timeout=60)
        if sampler.returncode != 0 or not raw.exists():
            raise SystemExit(f"profile_stages: py-spy failed: {err.decode().strip()[-400:]}")
        stages, threads = profile(raw)
    requests, seconds = r["requests"], r["seconds"]
    # The sampler runs 2 s past the load: scale samples to the load's share of its window.
    window = int(args.duration) + 2
    per_request = {
        s: n / args.rate * 1000 / requests * (seconds / window) for s, n in stages.items()
    }
    total = sum(per_request.values())
    print(f"{args.input} at c={args.concurrency}: {requests / seconds:.0f} req/s, "
          f"p99 {r['p99_ms']:.1f} ms; process group CPU {cpu / requests * 1000:.3f} core-ms a "
          f"request (/proc), sampled {total:.3f}")  # fmt: skip
    print(f"{'stage':28} {'core-ms/request':>16} {'share':>7}")
    for stage, ms in sorted(per_request.items(), key=lambda kv: -kv[1]):
        print(f"{stage:28} {ms:16.3f} {ms / total:7.1%}")
    busy = threads["inference thread"] / args.rate / window
    print(f"inference thread busy {busy:.0%} of the run")
    report = {
        "input": args.input,
        "concurrency": args.concurrency,
        "rps": requests / seconds,
        "p99_ms": r["p99_ms"],
        "cpu_ms_per_request_proc": cpu / requests * 1000,
        "core_ms_per_request": per_request,
        "inference_thread_busy": busy,
        "cpus": os.cpu_count(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
