"""A scripted API session against a running service, its answers as JSON lines, timings removed.

    python scripts/api_session.py http://127.0.0.1:8000 [--photos ../shared/real-photos] > a.jsonl

Run it against two versions of the service and `diff` the files: a change that should not change
behaviour gives byte-identical output. It covers predictions of PNGs and real photos, bad
uploads, a batch, /model, /model/summary, health, a 404, /openapi.json and the Open Inference
Protocol (metadata and an infer).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

VOLATILE = ("timing_ms",)
GETS = (
    "/model",
    "/model/summary",
    "/model/summary?input_size=64&depth=2",
    "/model/summary?input_size=3",
    "/health/live",
    "/health/ready",
    "/nope",
    "/openapi.json",
    "/v2",
    "/v2/health/ready",
    "/v2/models/d2l-resnet18",
    "/v2/models/other",
)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _test_images(n: int) -> np.ndarray:
    path = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
    raw = gzip.decompress(path.read_bytes())
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)[:n]


def session(base: str, photos: Path | None) -> list[dict[str, Any]]:
    """The requests, in order, and what each answered: status, content type, cleaned body."""
    images = _test_images(4)
    pngs = [_png(a) for a in images]
    photo_files = sorted(photos.rglob("*.jpg"))[:3] if photos and photos.is_dir() else []
    jpeg = photo_files[0].read_bytes() if photo_files else pngs[0]
    calls: list[tuple[str, str, dict[str, Any]]] = [
        *[("POST", "/predict", {"files": {"image": ("a.png", p, "image/png")}}) for p in pngs],
        *[
            ("POST", "/predict", {"files": {"image": (f.name, f.read_bytes(), "image/jpeg")}})
            for f in photo_files
        ],
        (
            "POST",
            "/predict?top_k=10",
            {"content": pngs[1], "headers": {"content-type": "image/png"}},
        ),
        (
            "POST",
            "/predict",
            {"files": {"image": ("x.pdf", b"%PDF-1.4 not an image", "application/pdf")}},
        ),
        ("POST", "/predict", {"files": {"image": ("e.png", b"", "image/png")}}),
        ("POST", "/predict", {"files": {"image": ("t.jpg", jpeg[: len(jpeg) // 3], "image/jpeg")}}),
        ("POST", "/predict", {"files": {"other": ("a.png", pngs[0], "image/png")}}),
        ("POST", "/predict", {"content": b"{}", "headers": {"content-type": "application/json"}}),
        ("POST", "/predict?top_k=0", {"files": {"image": ("a.png", pngs[0], "image/png")}}),
        (
            "POST",
            "/predict",
            {
                "content": b"--x\r\nbroken",
                "headers": {"content-type": "multipart/form-data; boundary=x"},
            },
        ),
        (
            "POST",
            "/predict/batch",
            {"files": [("images", (f"{i}.png", p, "image/png")) for i, p in enumerate(pngs)]},
        ),
        (
            "POST",
            "/predict/batch?top_k=1",
            {
                "files": [
                    ("images", ("a.png", pngs[0], "image/png")),
                    ("images", ("b.pdf", b"nope", "application/pdf")),
                ]
            },
        ),
        *[
            ("POST", "/predict/batch", {"files": [("images", ("a.png", pngs[0], "image/png"))] * n})
            for n in (65, 66)
        ],
        *[("GET", path, {}) for path in GETS],
        (
            "POST",
            "/v2/models/d2l-resnet18/infer",
            {
                "json": {
                    "inputs": [
                        {
                            "name": "image",
                            "shape": [1],
                            "datatype": "BYTES",
                            "data": [base64.b64encode(pngs[2]).decode()],
                        }
                    ]
                }
            },
        ),
        (
            "POST",
            "/v2/models/d2l-resnet18/infer",
            {
                "json": {
                    "inputs": [
                        {
                            "name": "pixels",
                            "shape": [1, 28, 28],
                            "datatype": "UINT8",
                            "data": images[3].ravel().tolist(),
                        }
                    ]
                }
            },
        ),
        (
            "POST",
            "/v2/models/d2l-resnet18/infer",
            {
                "json": {
                    "inputs": [
                        {
                            "name": "pixels",
                            "shape": [1, 28, 27],
                            "datatype": "UINT8",
                            "data": [0] * 756,
                        }
                    ]
                }
            },
        ),
    ]
    out = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for method, path, kw in calls:
            r = client.request(method, path, **kw)
            kind = r.headers.get("content-type", "")
            body: Any = _clean(r.json()) if kind.startswith("application/json") else len(r.content)
            out.append(
                {"request": f"{method} {path}", "status": r.status_code, "type": kind, "body": body}
            )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base", help="the service's address, e.g. http://127.0.0.1:8000")
    p.add_argument("--photos", type=Path, default=Path("../shared/real-photos"))
    args = p.parse_args()
    for line in session(args.base, args.photos):
        sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
