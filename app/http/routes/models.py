"""GET /models: the model repository, every version with its state, input and backend."""

from __future__ import annotations

from fastapi import APIRouter

from app.http.deps import ServicesDep
from app.http.error_docs import responses
from app.protocol.schemas import ErrorResponse, ModelInput, ModelsResponse, ModelVersionInfo

router = APIRouter(tags=["model"])


@router.get("/models", response_model=ModelsResponse, responses=responses(ErrorResponse, 401))
async def models(services: ServicesDep) -> ModelsResponse:
    """Every version on disk or loaded: LOADING, READY, UNLOADING, UNAVAILABLE (with the reason
    it failed), or no state (on disk, not loaded)."""
    repository = services.repository
    rows = []
    for row in repository.index():
        entry = repository.ready(row["name"]).get(int(row["version"]))
        info = ModelVersionInfo(**row)
        if entry is not None and entry.engine is not None:
            ckpt = entry.engine.ckpt
            info.input = ModelInput(channels=ckpt.in_channels, size=ckpt.input_size,
                                    view=ckpt.view)  # fmt: skip
            info.backend = entry.engine.runner.name
            info.checkpoint = ckpt.short_hash
            acc = ckpt.meta.get("metrics", {}).get("test_acc")
            info.test_acc = float(acc) if isinstance(acc, int | float) else None
        rows.append(info)
    return ModelsResponse(
        default=repository.default, control=services.settings.model_control, models=rows
    )
