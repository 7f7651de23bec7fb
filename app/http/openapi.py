"""The OpenAPI document says what the running service enforces: limits from the settings, and
security, on the paths app.http.api_key guards, only when an API key is set."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel

from app.config import Settings
from app.http.api_key import is_protected

# The two ways to send the key, as the document declares them (app.http.api_key checks them).
BEARER = HTTPBearer(auto_error=False, description="API key as a bearer token")
KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key header")
SECURITY_SCHEMES = {"HTTPBearer": BEARER, "APIKeyHeader": KEY_HEADER}

METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for _, op in _paths_and_operations(schema)]


def _paths_and_operations(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path, op)
        for path, item in schema.get("paths", {}).items()
        for m, op in item.items()
        if m in METHODS
    ]


def describe_settings(schema: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Fill the document's settings-dependent parts in place; return it."""
    batch = schema["paths"]["/predict/batch"]["post"]["requestBody"]["content"]
    images = batch["multipart/form-data"]["schema"]["properties"]["images"]
    images.update(minItems=1, maxItems=settings.max_batch_images)
    if settings.api_key is None:
        # Nothing asks for a key: clients and Swagger UI must not be told to send one.
        for op in _operations(schema):
            op.get("responses", {}).pop("401", None)
        return schema
    # The key is checked by path (app.http.api_key): the document says so for the same paths.
    for path, op in _paths_and_operations(schema):
        if is_protected(path):
            op["security"] = [{name: []} for name in SECURITY_SCHEMES]
    schemes = {name: scheme.model.model_dump(mode="json", by_alias=True, exclude_none=True)
               for name, scheme in SECURITY_SCHEMES.items()}  # fmt: skip
    schema.setdefault("components", {})["securitySchemes"] = schemes
    return schema


def add_models(schema: dict[str, Any], models: tuple[type[BaseModel], ...]) -> dict[str, Any]:
    """Put the schemas of models that routes read themselves (not FastAPI) into the document's
    components, where their operations refer to them; return it."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for m in models:
        own = m.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(own.pop("$defs", {}))
        components[m.__name__] = own
    return schema


def fix_path_values(schema: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """Give path parameters that have one valid value (the served model's name and version)
    that value as their only choice: Swagger UI offers it, clients see it; return the document."""
    for op in _operations(schema):
        for param in op.get("parameters", []):
            if param.get("in") == "path" and param["name"] in values:
                value = values[param["name"]]
                param["schema"] = {**param.get("schema", {}), "enum": [value], "default": value}
    return schema


def install(
    app: FastAPI,
    settings: Settings,
    models: tuple[type[BaseModel], ...] = (),
    path_values: dict[str, str] | None = None,
) -> None:
    """Make app.openapi() return the document with the settings described, `models` added and
    `path_values` fixed (built once)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = fix_path_values(add_models(build(), models), path_values or {})
            app.openapi_schema = describe_settings(schema, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
