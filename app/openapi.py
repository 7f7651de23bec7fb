"""The OpenAPI document says what the running service enforces: limits from the settings, and
security only when an API key is set."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.config import Settings

METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        op for item in schema.get("paths", {}).values() for m, op in item.items() if m in METHODS
    ]


def describe_settings(schema: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Fill the document's settings-dependent parts in place; return it."""
    batch = schema["paths"]["/predict/batch"]["post"]["requestBody"]["content"]
    images = batch["multipart/form-data"]["schema"]["properties"]["images"]
    images.update(minItems=1, maxItems=settings.max_batch_images)
    if settings.api_key is None:
        # Nothing asks for a key: clients and Swagger UI must not be told to send one.
        for op in _operations(schema):
            op.pop("security", None)
            op.get("responses", {}).pop("401", None)
        schema.get("components", {}).pop("securitySchemes", None)
    return schema


def install(app: FastAPI, settings: Settings) -> None:
    """Make app.openapi() return the document with the settings described (built once)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe_settings(build(), settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
