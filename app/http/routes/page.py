"""GET /: the page for people, a static bundle (app/http/page) that calls /predict?explain=true.

Served from the package itself: no CDN, works offline and from a read-only root. Its
Content-Security-Policy comes with every answer under these paths (app.http.api_key)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

PAGE_DIR = Path(__file__).resolve().parents[1] / "page"
ASSETS = "/page"  # the page's script and style sheet

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(PAGE_DIR / "index.html", media_type="text/html")


def assets() -> StaticFiles:
    """The page's files, mounted at ASSETS."""
    return StaticFiles(directory=PAGE_DIR)
