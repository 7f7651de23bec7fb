"""The CPU-per-stage profile's bookkeeping: which stage a sampled stack belongs to."""

from pathlib import Path

import pytest

from benchmarks.profile_stages import profile, stage_of

LOOP = "_run_once (asyncio/base_events.py:1922)"
ROUTE = "predict (app/http/routes/predict.py:40)"
SERVE = "InferenceEngine._serve (app/serving/engine.py:150)"


@pytest.mark.parametrize(
    ("frames", "stage"),
    [
        ([LOOP, ROUTE, "parse (app/protocol/multipart.py:61)"], "multipart"),
        # The innermost frame that names a stage decides: JSON encoding inside the answer.
        ([LOOP, ROUTE, "encode (app/protocol/answers.py:90)", "iterencode (json/encoder.py:2)"],
         "answer (JSON)"),
        ([LOOP, "observe (prometheus_client/metrics.py:600)"], "metrics"),
        ([SERVE, "InferenceEngine.forward (app/serving/engine.py:120)",
          "run (onnxruntime/capi/onnxruntime_inference_collection.py:266)"], "inference"),
        ([SERVE, "InferenceEngine._take_batch (app/serving/engine.py:170)"], "batching hand-off"),
        ([LOOP, "data_received (uvicorn/protocols/http/httptools_impl.py:200)"],
         "HTTP accept/parse/write"),
        ([LOOP], "event loop"),
        (["main (somewhere/else.py:1)"], "other"),
    ],
)  # fmt: skip
def test_a_sample_goes_to_its_innermost_named_stage(frames: list[str], stage: str) -> None:
    assert stage_of(frames) == stage


def test_samples_are_summed_by_stage_and_by_thread(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    inference = f"{SERVE};run (onnxruntime/capi/x.py:1)"
    raw.write_text(
        f"{LOOP};{ROUTE};parse (app/protocol/multipart.py:61) 7\n{inference} 5\n{LOOP} 3\n"
    )
    stages, threads = profile(raw)
    assert stages == {"multipart": 7, "inference": 5, "event loop": 3}
    assert threads == {"inference thread": 5, "other threads": 10}
