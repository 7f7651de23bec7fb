"""The query parameters of the prediction routes: top_k and explain, declared once.

/predict/batch declares them as FastAPI Query parameters. /predict reads them itself with
`top_k_of` and `explain_of`, which accept and refuse what those Query declarations do (a
differential test holds them to it), and declares them in the document by hand: FastAPI's
parameter solving cost about 5 % of a small /predict's CPU (docs/performance.md).
"""

from __future__ import annotations

from fastapi import Query, Request

from app.config import MODEL_NAME_PATTERN, VERSION_PATTERN
from app.errors import ApiError, echo

TOP_K_HELP = "how many classes to list (default DEFAULT_TOP_K)"
MAX_TOP_K = 10  # the number of classes
TopK = Query(None, ge=1, le=MAX_TOP_K, description=TOP_K_HELP)
EXPLAIN_HELP = (
    "also return the 28x28 the network saw (network_input, a base64 PNG; network_input_box, "
    "where it lies in the photo) and where the evidence for the answer lies (saliency, 28x28 "
    "values in [0, 1], by occlusion: 64 more images in the forward pass)"
)
Explain = Query(False, description=EXPLAIN_HELP)
MODEL_HELP = "the model to answer with (GET /models lists them); default DEFAULT_MODEL"
VERSION_HELP = "the model's version; default its latest ready one"
# Documented, not validated by FastAPI: a bad name or version is the repository's 400 everywhere.
Model = Query(None, description=MODEL_HELP, json_schema_extra={"pattern": MODEL_NAME_PATTERN})
ModelVersion = Query(None, description=VERSION_HELP, json_schema_extra={"pattern": VERSION_PATTERN})

# The two as the document declares them for /predict, as FastAPI would for TopK and Explain.
PARAMETERS = [
    {
        "name": "top_k",
        "in": "query",
        "required": False,
        "description": TOP_K_HELP,
        "schema": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_TOP_K},
                             {"type": "null"}], "title": "Top K"},
    },
    {
        "name": "explain",
        "in": "query",
        "required": False,
        "description": EXPLAIN_HELP,
        "schema": {"type": "boolean", "default": False, "title": "Explain"},
    },
    {"name": "model", "in": "query", "required": False, "description": MODEL_HELP,
     "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Model",
                "pattern": MODEL_NAME_PATTERN}},
    {"name": "version", "in": "query", "required": False, "description": VERSION_HELP,
     "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Version",
                "pattern": VERSION_PATTERN}},
]  # fmt: skip
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def explain_of(request: Request) -> bool:
    """The explain query parameter, read as FastAPI reads a bool."""
    raw = request.query_params.get("explain")
    if raw is None or raw.lower() in _FALSE:
        return False
    if raw.lower() in _TRUE:
        return True
    raise ApiError(422, f"query parameter explain: must be true or false, got '{echo(raw)}'")


def top_k_of(request: Request, default: int) -> int:
    """The top_k query parameter, checked as TopK checks it; `default` when absent."""
    raw = request.query_params.get("top_k")
    if raw is None:
        return default
    # isdecimal: exactly the digits int() reads ("²" is a digit it does not).
    if not raw.strip().isdecimal() or not 1 <= int(raw) <= MAX_TOP_K:
        raise ApiError(
            422,
            f"query parameter top_k: must be an integer from 1 to {MAX_TOP_K}, got '{echo(raw)}'",
        )
    return int(raw)
