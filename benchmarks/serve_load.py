"""Serving load benchmark: the service vs TorchServe, LitServe, a naive FastAPI wrapper and the
raw model ceiling.

    python benchmarks/serve_load.py [--peers] [--duration 10] [--concurrency 1 8 32 64]

One run, side by side on the same machine: it starts the service (`python -m app.serve` with
the app's defaults, access log off), then benchmarks/naive_server.py and, with --peers, TorchServe
(eager torch, and ONNX Runtime on the service's own INT8 graph) and LitServe
(benchmarks/peer_servers.py: their own virtual environment, the same network and photo
preprocessing; each peer's fastest of a few batching/worker configurations, chosen by a
short PNG run at c=32 first). It drives each with a 28x28 Fashion-MNIST PNG and a 400x534
product JPEG at each concurrency (a warm-up, then a fixed duration), and measures the raw
ceiling: in-process forward passes of the same checkpoint on the same device.
Right after each service run it times the raw model at batch 1 and at the mean batch size that
run used (read from /metrics), so each ratio compares figures taken seconds apart; a full raw
table ends the run. The load comes from `wrk` (C, one thread, nice 10, a Lua script posting a
prebuilt multipart body) when it is on PATH, else from load_client.py (asyncio); the output
says which, and how much CPU it took, since it shares the cores with the server.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import Settings, cpu_cores, default_inference_threads  # noqa: E402
from app.http.factory import CPU_FLAGS_LOGGED  # noqa: E402
from app.serving.engine import build_engine  # noqa: E402
from app.serving.hardware import serving_device  # noqa: E402
from app.serving.runner import cpu_flags  # noqa: E402
from benchmarks._net import free_port, wait_until_ready  # noqa: E402
from benchmarks.peer_servers import (  # noqa: E402
    PEER_SERVERS,
    PeerConfig,
    group_cpu,
    peer_venv,
    versions,
)
from model.data.fashion_mnist import load_split  # noqa: E402
from model.images.silhouette import to_model_input  # noqa: E402
from model.network.checkpoint import load_checkpoint  # noqa: E402
from model.network.checkpoint_info import read_checkpoint_info  # noqa: E402

# A 400x534 baseline JPEG of jeans on a plain floor, the size product photos come in.
DEFAULT_PHOTO = ROOT.parent / "shared" / "real-photos" / "1_trouser" / "cds_2884d941_jeans.jpg"
BOUNDARY = "fashion-resnet-load-boundary"

WRK_SCRIPT = """
local f = assert(io.open(os.getenv("LOAD_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("LOAD_CONTENT_TYPE")
if os.getenv("LOAD_HEADER_NAME") then
  wrk.headers[os.getenv("LOAD_HEADER_NAME")] = os.getenv("LOAD_HEADER_VALUE")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %f, "errors": %d, "p50_ms": %f, "p95_ms": %f, "p99_ms": %f}\\n',
    summary.requests, summary.duration / 1e6,
    e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3))
end
"""


@dataclass(frozen=True)
class Upload:
    """One prebuilt request: body, content type, the service's path for it, one more header."""

    name: str
    content_type: str
    body: bytes
    path: str = "/predict"
    header: tuple[str, str] | None = None


@dataclass
class LoadResult:
    """One load run against one server."""

    server: str
    input: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    server_cpu: float  # cores the server process used on average
    generator_cpu: float  # cores the load generator used on average
    mean_batch: float | None = None
    # The raw model measured right after this run (service runs only), so drift in the machine's
    # speed over the benchmark hits both sides alike: ms at batch 1, images/s at the mean batch
    # size the service used, as the service runs the model and as plain eager PyTorch.
    raw_b1_ms: float | None = None
    raw_batch_used: float | None = None
    raw_eager_batch_used: float | None = None


def multipart(name: str, filename: str, mime: str, data: bytes) -> Upload:
    """A multipart/form-data body with one file in field 'image', as curl -F sends it."""
    body = (
        (
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="image"; filename="{filename}"\r\n'
            f"Content-Type: {mime}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return Upload(name, f"multipart/form-data; boundary={BOUNDARY}", body)


def explained(upload: Upload) -> Upload:
    """The upload sent to /predict?explain=true."""
    return replace(upload, path="/predict?explain=true")


def oip_binary(name: str, image: bytes, model: str) -> Upload:
    """An Open Inference Protocol request for one image file as a binary BYTES tensor, built by
    tritonclient as InferenceServerClient.infer sends it (both outputs, binary)."""
    import tritonclient.http as triton

    tensor = triton.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([image], dtype=object), binary_data=True)
    outputs = [triton.InferRequestedOutput(o, binary_data=True) for o in ("probabilities", "label")]
    body, json_size = triton.InferenceServerClient.generate_request_body([tensor], outputs=outputs)
    header = ("Inference-Header-Content-Length", str(json_size))
    path = f"/v2/models/{model}/infer"
    return Upload(name, "application/octet-stream", body, path, header)


def fashion_mnist_png() -> bytes:
    """The first Fashion-MNIST test image as a 28x28 grayscale PNG."""
    buf = io.BytesIO()
    Image.fromarray(load_split("test").images[0].numpy()).save(buf, format="PNG")
    return buf.getvalue()


# --- load generators -------------------------------------------------------------------------


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(url: str, upload: Upload, concurrency: int, seconds: float) -> dict[str, float]:
    """wrk at nice 10, one thread, `concurrency` keep-alive connections."""
    with tempfile.TemporaryDirectory() as tmp:
        script, body = Path(tmp, "post.lua"), Path(tmp, "body")
        script.write_text(WRK_SCRIPT)
        body.write_bytes(upload.body)
        env = {**os.environ, "LOAD_BODY": str(body), "LOAD_CONTENT_TYPE": upload.content_type}
        if upload.header:
            env["LOAD_HEADER_NAME"], env["LOAD_HEADER_VALUE"] = upload.header
        cmd = ["nice", "-n", "10", "wrk", "-t1", f"-c{concurrency}", f"-d{math.ceil(seconds)}s"]
        cmd += ["--timeout", "30s", "-s", str(script), url]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def run_python(url: str, upload: Upload, concurrency: int, seconds: float) -> dict[str, float]:
    """load_client.py in a child process at nice 10 (so its CPU is counted and yields)."""
    with tempfile.NamedTemporaryFile(suffix=".body") as body:
        body.write(upload.body)
        body.flush()
        cmd = ["nice", "-n", "10", sys.executable, str(Path(__file__).with_name("load_client.py"))]
        cmd += [url, body.name, upload.content_type, str(concurrency), str(seconds)]
        cmd += [": ".join(upload.header)] if upload.header else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


# --- servers ---------------------------------------------------------------------------------


def get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return bytes(resp.read())


@contextlib.contextmanager
def server(
    app: str, ready_path: str, env: dict[str, str], extra: list[str]
) -> Iterator[tuple[str, int]]:
    """Start `python -m APP` on a free port; yield (base URL, pid) once `ready_path` answers 200."""
    port = free_port()
    cmd = [sys.executable, "-m", *app.split(), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--no-access-log", *extra]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={"LOG_LEVEL": "warning", **os.environ, **env},
        start_new_session=True,  # a process group of its own, so its CPU can be summed
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, base + ready_path)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def batch_totals(base: str) -> tuple[float, float]:
    """(images, forward passes) so far, from the service's /metrics (summed over its models)."""
    text = get(base + "/metrics").decode()

    def summed(name: str) -> float:
        return sum(map(float, re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)", text, re.M)))

    return summed("fashion_batch_size_sum"), summed("fashion_batch_size_count")


class Driver:
    """Runs the chosen load generator and records what each run cost."""

    def __init__(
        self, generator: str, warmup: float, duration: float, raw: RawModel | None
    ) -> None:
        self.generator, self.warmup, self.duration, self.raw = generator, warmup, duration, raw
        self.run = run_wrk if generator == "wrk" else run_python
        self.requests = 0  # every request sent, warm-ups included

    def load(
        self, name: str, url: str, pid: int, upload: Upload, concurrency: int, service: bool
    ) -> LoadResult:
        """Warm up, then one measured run at `url`; CPU is counted over the server's whole process
        group (the service's decoding process, a peer's workers)."""
        base = url.removesuffix(upload.path)
        cpu_of = group_cpu
        self.requests += int(self.run(url, upload, concurrency, self.warmup)["requests"])
        before = batch_totals(base) if service else (0.0, 0.0)
        cpu, gen_cpu = cpu_of(pid), _children_cpu()
        r = self.run(url, upload, concurrency, self.duration)
        cpu, gen_cpu = cpu_of(pid) - cpu, _children_cpu() - gen_cpu
        self.requests += int(r["requests"])
        mean_batch = None
        raw: dict[str, float] = {}
        if service:
            after = batch_totals(base)
            passes = after[1] - before[1]
            mean_batch = round((after[0] - before[0]) / passes, 2) if passes else None
            if self.raw and mean_batch:
                used = max(1, round(mean_batch))
                raw["raw_b1_ms"] = self.raw.time("as_served", 1)["ms"]
                raw["raw_batch_used"] = self.raw.time("as_served", used)["img_per_s"]
                raw["raw_eager_batch_used"] = self.raw.time("as_loaded", used)["img_per_s"]
        seconds = float(r["seconds"])
        result = LoadResult(
            server=name,
            input=upload.name,
            concurrency=concurrency,
            requests=int(r["requests"]),
            errors=int(r["errors"]),
            seconds=round(seconds, 3),
            rps=round(r["requests"] / seconds, 1),
            p50_ms=round(r["p50_ms"], 2),
            p95_ms=round(r["p95_ms"], 2),
            p99_ms=round(r["p99_ms"], 2),
            server_cpu=round(cpu / seconds, 2),
            generator_cpu=round(gen_cpu / seconds, 2),
            mean_batch=mean_batch,
            **raw,
        )
        print(
            f"  {name:10} {upload.name:14} c={concurrency:<3} {result.rps:7.1f} req/s  "
            f"p50 {result.p50_ms:7.2f}  p99 {result.p99_ms:7.2f} ms  errors {result.errors}"
            + (f"  mean batch {mean_batch}" if mean_batch else ""),
            flush=True,
        )
        return result


def paired_rounds(
    driver: Driver, base: str, pid: int, uploads: dict[str, Upload], rounds: int
) -> dict[str, object]:
    """The service's inputs at c=32, back to back, `rounds` times: each input's median rate and
    its ratio to the PNG's, so that a bar comparing two inputs rests on more than one run each."""
    rates: dict[str, list[float]] = {u.name: [] for u in uploads.values()}
    print(f"paired rounds at c=32 ({rounds} x {len(uploads)} runs):", flush=True)
    for _ in range(rounds):
        for upload in uploads.values():
            r = driver.run(base + upload.path, upload, 32, driver.duration / 2)
            driver.requests += int(r["requests"])
            rates[upload.name].append(round(r["requests"] / r["seconds"], 1))
    median = {name: statistics.median(v) for name, v in rates.items()}
    png = median.get("fmnist-28.png")
    for name, v in rates.items():
        print(f"  {name:14} {v} req/s, median {median[name]}", flush=True)
    return {
        "concurrency": 32,
        "seconds_each": driver.duration / 2,
        "rates": rates,
        "median_rps": median,
        "vs_png": {n: round(m / png, 3) for n, m in median.items()} if png else {},
    }


# --- raw ceiling -----------------------------------------------------------------------------


def time_forward(fn: object, images: torch.Tensor, min_seconds: float) -> float:
    """Median seconds of one forward pass of `images` through `fn`."""
    for _ in range(3):
        fn(images)  # type: ignore[operator]
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 10 or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn(images)  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class RawModel:
    """In-process forward passes of the same checkpoint on the same device, three ways.

    as_served: the service's own model and thread count (its engine's forward, uint8 to
    probabilities). all_cores: the same with every core. as_loaded: the checkpoint's plain
    nn.Module in eager PyTorch with torch's default threads, as model.evaluate runs it.
    """

    def __init__(self, settings: Settings, seconds: float) -> None:
        device = serving_device(settings.model_device)
        ckpt = load_checkpoint(settings.model_checkpoint)
        plain = ckpt.model.to(device).eval()
        torch_threads = torch.get_num_threads()

        @torch.inference_mode()
        def as_loaded(images: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(images).to(device)
            x = to_model_input(x, ckpt.input_size, ckpt.mean, ckpt.std)
            return plain(x).softmax(1).cpu().numpy()

        cores = cpu_cores()
        all_cores = settings.model_copy(update={"inference_threads": cores})
        self.ways = {
            "as_loaded": as_loaded,
            "all_cores": build_engine(all_cores, ckpt, device).runner,
            "as_served": build_engine(settings, ckpt, device).runner,
        }
        served = settings.inference_threads or default_inference_threads(ckpt.input_size)
        self.threads = {"as_loaded": torch_threads, "all_cores": cores, "as_served": served}
        self.test = load_split("test").images.numpy()
        self.seconds = seconds

    def time(self, way: str, batch: int) -> dict[str, float]:
        """ms per forward pass and images/s of one way at one batch size (median)."""
        torch.set_num_threads(self.threads[way])  # torch's count is per process
        sec = time_forward(self.ways[way], self.test[:batch], self.seconds)
        return {"ms": round(sec * 1e3, 2), "img_per_s": round(batch / sec, 1)}

    def table(self, batches: list[int]) -> dict[str, dict[int, dict[str, float]]]:
        """Every way at every batch size, printed as it goes."""
        out: dict[str, dict[int, dict[str, float]]] = {}
        for way in self.ways:
            out[way] = {b: self.time(way, b) for b in batches}
            print(
                f"  raw {way:9} "
                + "  ".join(f"b{b} {v['ms']} ms {v['img_per_s']}/s" for b, v in out[way].items()),
                flush=True,
            )
        return out


# --- the run ---------------------------------------------------------------------------------


def best_config(
    driver: Driver,
    name: str,
    start: Any,
    configs: tuple[PeerConfig, ...],
    python: Path,
    upload: Upload,
    concurrency: int = 32,
) -> tuple[PeerConfig, dict[str, float]]:
    """The peer's fastest configuration, by a short PNG run at `concurrency` each (half the
    measured time), and every configuration's rate."""
    tuning = Driver(driver.generator, 1.0, max(2.0, driver.duration / 2), None)
    rates = {}
    for config in configs:
        with start(python, config, upload.body, upload.content_type) as (url, pid):
            rates[config] = tuning.load(f"{name}?", url, pid, upload, concurrency, False).rps
    best = max(rates, key=lambda c: rates[c])
    print(f"  {name}: best of {len(configs)} at c={concurrency}: {best}", flush=True)
    return best, {str(c): r for c, r in rates.items()}


def parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--env wants KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before each run")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    p.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="the real photo to post")
    p.add_argument(
        "--inputs",
        nargs="+",
        choices=["fmnist", "v2", "photo", "explain"],
        default=["fmnist", "v2", "photo"],
        help="v2: the PNG as tritonclient sends it to the service's Open Inference Protocol "
        "route; explain: the photo to /predict?explain=true (not run unless named)",
    )
    p.add_argument(
        "--servers", nargs="+", choices=["service", "naive"], default=["service", "naive"]
    )
    p.add_argument(
        "--peers",
        action="store_true",
        help="also TorchServe (eager torch, and ONNX Runtime on the service's INT8 graph) and "
        "LitServe (builds .venv-peers the first time; needs Java)",
    )
    p.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    p.add_argument("--raw-seconds", type=float, default=1.5, help="timing per raw batch size")
    p.add_argument("--memory-requests", type=int, default=10_000, help="requests for the RSS check")
    p.add_argument(
        "--paired-rounds",
        type=int,
        default=3,
        help="rounds of the service's inputs back to back at c=32 after the table, for the "
        "ratios the bars compare (median over rounds; one 10 s run moves by 10-15 %% here)",
    )
    p.add_argument("--env", nargs="*", default=[], help="KEY=VALUE settings for the service")
    p.add_argument("--server-args", default="", help="more app.serve options for the service")
    p.add_argument("--json", type=Path, default=ROOT / "runs" / "serve_load.json")
    args = p.parse_args()

    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    env = parse_env(args.env)
    os.environ.update(env)  # the raw ceiling uses the service's own settings
    settings = Settings()
    uploads = {
        "fmnist": multipart("fmnist-28.png", "fmnist.png", "image/png", fashion_mnist_png()),
        "photo": multipart(
            f"photo-{args.photo.suffix[1:]}",
            args.photo.name,
            "image/jpeg" if args.photo.suffix.lower() in (".jpg", ".jpeg") else "image/png",
            args.photo.read_bytes(),
        ),
        # The same photo, with the network's view and occlusion saliency in the answer.
        "explain": explained(
            multipart(
                f"explain-{args.photo.suffix[1:]}",
                args.photo.name,
                "image/jpeg" if args.photo.suffix.lower() in (".jpg", ".jpeg") else "image/png",
                args.photo.read_bytes(),
            )
        ),
        "v2": oip_binary(
            "v2-fmnist-png",
            fashion_mnist_png(),
            read_checkpoint_info(settings.model_checkpoint).architecture,
        ),
    }
    uploads = {k: uploads[k] for k in args.inputs}
    raw_model = RawModel(settings, args.raw_seconds) if "service" in args.servers else None
    driver = Driver(generator, args.warmup, args.duration, raw_model)
    print(
        f"load generator: {generator}"
        + (" (1 thread, nice 10, Lua posting a prebuilt body)" if generator == "wrk" else "")
        + f"; {args.warmup:g} s warm-up + {args.duration:g} s per run; torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs; service env {env or 'defaults'}",
        flush=True,
    )
    results: list[LoadResult] = []
    memory: dict[str, float] = {}
    paired: dict[str, object] = {}
    for name in args.servers:
        service = name == "service"
        naive = "uvicorn --app-dir benchmarks naive_server:create_app --factory"
        # The service as `make serve` and the Docker image run it.
        app = "app.serve" if service else f"{naive} --log-level warning"
        extra = args.server_args.split() if service else []
        with server(app, "/health/ready" if service else "/health", env, extra) as (base, pid):
            # Each concurrency's inputs back to back, so that the ratios between them (photo and
            # v2 against the PNG) are not moved by drift in the machine's speed over the run. The
            # naive wrapper has /predict only.
            for c in args.concurrency:
                for upload in (u for u in uploads.values() if service or u.path == "/predict"):
                    results.append(driver.load(name, base + upload.path, pid, upload, c, service))
                    if service and not memory:
                        memory["rss_after_warmup_mb"] = rss_mb(pid)
                        driver.requests = 0
            if service and args.paired_rounds and 32 in args.concurrency and len(uploads) > 1:
                paired = paired_rounds(driver, base, pid, uploads, args.paired_rounds)
            if service and args.memory_requests:
                # Top up to the asked number of requests since the warm-up RSS reading.
                upload = next(iter(uploads.values()))
                while driver.requests < args.memory_requests:
                    rate = max(r.rps for r in results if r.server == "service")
                    left = (args.memory_requests - driver.requests) / rate + 1
                    driver.requests += int(
                        driver.run(base + "/predict", upload, 32, left)["requests"]
                    )
                memory["requests_since_warmup"] = driver.requests
                memory["rss_after_requests_mb"] = rss_mb(pid)
                memory["growth_mb"] = round(
                    memory["rss_after_requests_mb"] - memory["rss_after_warmup_mb"], 1
                )
    peers: dict[str, object] = {}
    if args.peers:
        python = peer_venv()
        peers["versions"] = versions(python)
        for name, (start, configs) in PEER_SERVERS.items():
            config, tuning = best_config(driver, name, start, configs, python, uploads["fmnist"])
            peers[name] = {"config": str(config), "tuning_c32_rps": tuning}
            probe = uploads["fmnist"]
            with start(python, config, probe.body, probe.content_type) as (url, pid):
                for c in args.concurrency:
                    for upload in (u for u in uploads.values() if u.path == "/predict"):
                        results.append(driver.load(name, url, pid, upload, c, service=False))
    print("\nraw ceiling, in-process, same device (ms per forward, images/s):")
    raw = raw_model.table(sorted({1, *args.concurrency})) if raw_model else {}
    report = summarise(results, raw, memory, paired)
    report["meta"] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or ''}",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "generator": generator,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "service_env": env,
        "service_server_args": args.server_args,
        "device": serving_device(settings.model_device),
        # The features that change how fast the model runs: figures compare only beside them.
        "cpu_flags": sorted(cpu_flags().intersection(CPU_FLAGS_LOGGED)),
        "peers": peers,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults written to {args.json}")


def summarise(
    results: list[LoadResult],
    raw: dict[str, dict[int, dict[str, float]]],
    memory: dict[str, float],
    paired: dict[str, Any] | None = None,
) -> dict[str, object]:
    """Print the table, ratios and acceptance checks; return everything as one JSON object."""
    by_key = {(r.server, r.input, r.concurrency): r for r in results}
    rows = []
    print(
        "\n| server | input | c | req/s | p50 ms | p95 ms | p99 ms | errors | server CPU | "
        "load CPU | mean batch | / raw as served | / naive | / TorchServe | "
        "/ TorchServe + ORT | / LitServe |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        row = asdict(r)
        if r.raw_batch_used:
            row["vs_raw_batch_used"] = round(r.rps / r.raw_batch_used, 3)
        if r.raw_eager_batch_used:
            row["vs_raw_eager_batch_used"] = round(r.rps / r.raw_eager_batch_used, 3)
        if r.server == "service":
            for peer in ("naive", "torchserve", "torchserve-ort", "litserve"):
                other = by_key.get((peer, r.input, r.concurrency))
                if other and other.rps:
                    row[f"vs_{peer}"] = round(r.rps / other.rps, 2)
        rows.append(row)
        print(
            f"| {r.server} | {r.input} | {r.concurrency} | {r.rps} | {r.p50_ms} | {r.p95_ms} | "
            f"{r.p99_ms} | {r.errors} | {r.server_cpu} | {r.generator_cpu} | "
            f"{r.mean_batch or '-'} | {row.get('vs_raw_batch_used', '-')} | "
            f"{row.get('vs_naive', '-')} | {row.get('vs_torchserve', '-')} | "
            f"{row.get('vs_torchserve-ort', '-')} | {row.get('vs_litserve', '-')} |"
        )
    checks = acceptance(rows, memory, paired or {})
    if "growth_mb" in memory:
        print(
            f"\nRSS after warm-up {memory['rss_after_warmup_mb']:.1f} MB, after "
            f"{memory['requests_since_warmup']:,} more requests "
            f"{memory['rss_after_requests_mb']:.1f} MB (growth {memory['growth_mb']} MB)"
        )
    for check in checks:
        print(f"  [{'PASS' if check['ok'] else 'FAIL'}] {check['what']}")
    return {
        "results": rows,
        "raw": raw,
        "memory": memory,
        "paired": paired or {},
        "acceptance": checks,
    }


def acceptance(
    rows: list[dict[str, Any]], memory: dict[str, float], paired: dict[str, Any]
) -> list[dict[str, object]]:
    """The service's bars, each against figures of the same run: TorchServe's rate, the raw
    model's batch-1 time, the PNG's rate and latency for the photo and v2 (from the paired
    rounds when there are any), memory growth."""
    service = {(r["input"], r["concurrency"]): r for r in rows if r["server"] == "service"}
    png = {c: r for (name, c), r in service.items() if name == "fmnist-28.png"}
    photo = {c: r for (name, c), r in service.items() if name.startswith("photo")}
    v2 = {c: r for (name, c), r in service.items() if name.startswith("v2")}
    checks: list[dict[str, object]] = []

    def check(what: str, ok: bool) -> None:
        checks.append({"what": what, "ok": bool(ok)})

    if png.get(1, {}).get("raw_b1_ms"):
        r = png[1]
        check(f"PNG c=1 p50 {r['p50_ms']} ms <= raw batch-1 {r['raw_b1_ms']} ms + 1.5",
              r["p50_ms"] <= r["raw_b1_ms"] + 1.5)  # fmt: skip
    if 32 in png:
        r = png[32]
        check(f"PNG c=32 p99 {r['p99_ms']} ms < 50, errors {r['errors']}",
              r["p99_ms"] < 50 and r["errors"] == 0)  # fmt: skip
        if "vs_torchserve" in r:
            check(f"PNG c=32 {r['rps']} req/s = {r['vs_torchserve']} x TorchServe's best >= 1.4",
                  r["vs_torchserve"] >= 1.4)  # fmt: skip
    for rates, bar, what in ((photo, 0.5, "photo"), (v2, 0.9, "v2 binary")):
        if 32 not in png or 32 not in rates:
            continue
        name = rates[32]["input"]
        if name in paired.get("vs_png", {}):
            rps, ratio = paired["median_rps"][name], round(paired["vs_png"][name], 2)
            how = f"median of {len(paired['rates'][name])} paired runs"
        else:
            rps, ratio, how = rates[32]["rps"], round(rates[32]["rps"] / png[32]["rps"], 2), "1 run"
        check(f"{what} c=32 {rps} req/s = {ratio} x the PNG's >= {bar} ({how})", ratio >= bar)
    if 1 in png and 1 in photo:
        p, q = photo[1]["p50_ms"], png[1]["p50_ms"]
        check(f"photo c=1 p50 {p} ms <= PNG p50 {q} ms + 1.5", p <= q + 1.5)
    if "growth_mb" in memory:
        check(f"RSS growth {memory['growth_mb']} MB < 50 MB", memory["growth_mb"] < 50)
    return checks


if __name__ == "__main__":
    main()
