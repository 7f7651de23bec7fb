"""The model repository: checkpoints by name and version, loaded, warmed up and swapped live.

Layout, Triton's habit: `<root>/<name>/<version>/model.safetensors` with its `model.json` (and
the ONNX graphs export writes beside them). A name is a letter or digit, then letters, digits,
'.', '_' or '-' (so never '..' or a path); a version is a positive integer. A version takes
traffic only once its engine is warmed up; the one it replaces finishes what it holds, then stops.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from app.config import MODEL_NAME_PATTERN, VERSION_PATTERN
from app.errors import ApiError, echo
from app.serving.decode import release_free_memory
from app.serving.engine import InferenceEngine
from model.network.checkpoint_info import CheckpointError

log = logging.getLogger("app.serving.repository")

NAME = re.compile(MODEL_NAME_PATTERN)
VERSION = re.compile(VERSION_PATTERN)
WEIGHTS = "model.safetensors"
LOADING, READY, UNLOADING, UNAVAILABLE = "LOADING", "READY", "UNLOADING", "UNAVAILABLE"
# What a checkpoint dropped in may raise on load: each is its reason in the index, not a crash.
LOAD_ERRORS = (CheckpointError, RuntimeError, OSError, ValueError, KeyError)


class RepositoryError(ApiError):
    """A request the repository refuses: a bad name (400), an unknown model (404), or a call
    that would leave the service nothing to answer with (409)."""


def check_name(name: str) -> str:
    """name, or a 400 RepositoryError: it never reaches the disk unless it is a plain name."""
    if not NAME.fullmatch(name):
        raise RepositoryError(
            400,
            f"'{echo(name, 64)}' is not a model name (a letter or digit, then letters, "
            "digits, '.', '_' or '-')",
        )
    return name


def parse_version(version: str | int | None) -> int | None:
    """A version as an int (None: the latest ready one), or a 400 RepositoryError."""
    if version is None:
        return None
    if (isinstance(version, int) and version >= 1) or VERSION.fullmatch(str(version)):
        return int(version)
    raise RepositoryError(400, f"'{echo(str(version), 32)}' is not a version (a positive integer)")


def scan(root: Path) -> dict[str, dict[int, Path]]:
    """Every `<name>/<version>/model.safetensors` under root: {name: {version: weights}}.
    Folders that are not a name or a version are skipped."""
    found: dict[str, dict[int, Path]] = {}
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if not NAME.fullmatch(model_dir.name):
            continue
        versions = {
            int(v.name): v / WEIGHTS
            for v in model_dir.iterdir()
            if v.is_dir() and VERSION.fullmatch(v.name) and (v / WEIGHTS).is_file()
        }
        found[model_dir.name] = versions
    return found


def signature(weights: Path) -> tuple[int, ...]:
    """The sizes and modification times of a version's files: a copy in progress changes it."""
    out: list[int] = []
    for path in (weights, weights.with_suffix(".json")):
        try:
            st = path.stat()
            out += [st.st_size, st.st_mtime_ns]
        except OSError:
            out += [-1, -1]
    return tuple(out)


@dataclass(eq=False)
class Version:
    """One loaded (or failed) version of a model: its state, engine and the requests it holds."""

    name: str
    version: int
    path: Path
    state: str = LOADING
    reason: str = ""
    engine: InferenceEngine | None = None
    signature: tuple[int, ...] = ()  # its files' sizes and times when loaded (poll compares)
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def row(self) -> dict[str, str]:
        """Its line in the repository index (Triton's fields)."""
        return {
            "name": self.name,
            "version": str(self.version),
            "state": self.state,
            "reason": self.reason,
        }


# Builds a version's engine from its weights file (blocking: run off the event loop).
Builder = Callable[[Path], InferenceEngine]
# What the repository holds, {name: {version: weights}}, read anew at each call.
Sources = Callable[[], dict[str, dict[int, Path]]]


class Repository:
    """The models a service serves. Reads come from the event loop (no lock needed); load and
    unload calls for one model are serialised by its lock."""

    def __init__(self, sources: Sources, build: Builder, default: str) -> None:
        self._sources = sources
        self._build = build
        self.default = default
        self._ready: dict[str, dict[int, Version]] = {}
        self._failed: dict[tuple[str, int], Version] = {}
        self._loading: dict[tuple[str, int], Version] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        # Told the number of ready models whenever it changes (admission's fair shares).
        self.on_change: Callable[[int], None] = lambda models: None

    def _changed(self) -> None:
        self.on_change(sum(1 for versions in self._ready.values() if versions))

    # --- reads -------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every model on disk or loaded, sorted."""
        return sorted(set(self._sources()) | set(self._ready))

    def ready(self, name: str) -> dict[int, Version]:
        """name's ready versions by number."""
        return self._ready.get(name, {})

    def index(self) -> list[dict[str, str]]:
        """Triton's repository index: every version on disk or loaded, with its state."""
        rows: dict[tuple[str, int], dict[str, str]] = {}
        for name, versions in self._sources().items():
            for number in versions:
                rows[name, number] = {"name": name, "version": str(number), "state": "",
                                      "reason": ""}  # fmt: skip
        for entry in (*self._failed.values(), *self._loading.values()):
            rows[entry.name, entry.version] = entry.row()
        for versions in self._ready.values():
            for entry in versions.values():
                rows[entry.name, entry.version] = entry.row()
        return [rows[k] for k in sorted(rows)]

    def resolve(self, name: str | None, version: str | int | None = None) -> Version:
        """The version a request goes to: the default model's latest ready version unless named;
        400 for a bad name or version, 404 for one that is not ready."""
        name = self.default if name is None else check_name(name)
        number = parse_version(version)
        versions = self.ready(name)
        if not versions:
            known = ", ".join(n for n in self._ready if self._ready[n]) or "none"
            raise RepositoryError(404, f"no model '{name}' is ready; ready models: {known}")
        if number is None:
            return versions[max(versions)]
        if number not in versions:
            ready = ", ".join(str(v) for v in sorted(versions))
            raise RepositoryError(
                404, f"model '{name}' has no ready version {number}; ready: {ready}"
            )
        return versions[number]

    @contextmanager
    def use(self, name: str | None, version: str | int | None = None) -> Iterator[Version]:
        """The version a request goes to, held until the request ends: a version being unloaded
        finishes the requests it holds before its engine stops."""
        entry = self.resolve(name, version)
        entry.in_flight += 1
        try:
            yield entry
        finally:
            entry.in_flight -= 1
            if entry.in_flight == 0:
                entry.idle.set()

    # --- control -----------------------------------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def load(self, name: str) -> Version:
        """Load name's latest version on disk, warm it up, let it take traffic, then retire the
        versions it replaces (a reload when it is loaded already). A version that fails to load
        keeps its reason in the index, and what was serving keeps serving."""
        check_name(name)
        async with self._lock(name):
            on_disk = self._sources().get(name)
            if not on_disk:
                raise RepositoryError(
                    404, f"no model '{name}' in the repository; it holds: "
                    f"{', '.join(self._sources()) or 'nothing'}",
                )  # fmt: skip
            number = max(on_disk)
            entry = Version(name, number, on_disk[number], signature=signature(on_disk[number]))
            self._loading[name, number] = entry
            try:
                loop = asyncio.get_running_loop()
                engine = await loop.run_in_executor(None, self._build, entry.path)
                await engine.start()  # warmed up before it takes traffic
            except LOAD_ERRORS as exc:
                entry.state, entry.reason = UNAVAILABLE, f"failed to load: {exc}"
                entry.signature = signature(entry.path)
                self._failed[name, number] = entry
                log.error("model %s version %d: %s", name, number, entry.reason)
                return entry
            finally:
                self._loading.pop((name, number), None)
            return await self._serve(entry, engine)

    async def adopt(self, name: str, number: int, path: Path, engine: InferenceEngine) -> Version:
        """Serve an engine built before the server started (the default model's, so that a bad
        one ends the process with one line): warm it up, then take traffic."""
        async with self._lock(name):
            await engine.start()
            entry = Version(name, number, path, signature=signature(path))
            return await self._serve(entry, engine)

    async def _serve(self, entry: Version, engine: InferenceEngine) -> Version:
        """Let entry's warmed-up engine take its model's traffic; what it replaces retires in
        the background (the call answers once the new version serves, not once a slow client
        of the old one is done)."""
        engine.served_as = (entry.name, entry.version)
        entry.engine, entry.state = engine, READY
        self._failed.pop((entry.name, entry.version), None)
        replaced = list(self._ready.get(entry.name, {}).values())
        self._ready[entry.name] = {entry.version: entry}
        self._changed()
        log.info("model %s version %d is ready (%s)", entry.name, entry.version, engine.runner.name)
        for old in replaced:
            old.state = UNLOADING  # from now: no new request reaches it
            task = asyncio.create_task(self._retire(old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        return entry

    async def unload(self, name: str) -> None:
        """Stop serving every version of name once its requests finish; 409 for the default
        model while it is the only ready one (the service would have nothing to answer with)."""
        check_name(name)
        async with self._lock(name):
            versions = self._ready.get(name)
            if not versions:
                raise RepositoryError(404, f"no model '{name}' is loaded")
            others = [n for n, v in self._ready.items() if v and n != name]
            if name == self.default and not others:
                raise RepositoryError(
                    409,
                    f"'{name}' is the default model (DEFAULT_MODEL) and the only one ready: "
                    "load another model first",
                )
            del self._ready[name]
            self._changed()
            for old in versions.values():
                await self._retire(old)

    async def _retire(self, entry: Version) -> None:
        """Wait for entry's requests to finish, then stop its engine and drop it."""
        entry.state = UNLOADING
        if entry.in_flight:
            entry.idle.clear()
            await entry.idle.wait()
        if entry.engine is not None:
            await entry.engine.stop()
            entry.engine.metrics.forget_model(entry.name, entry.version)
            entry.engine.runner = None  # type: ignore[assignment]  # the session's memory goes
            entry.engine = None
            gc.collect()
            release_free_memory()
        entry.state = UNAVAILABLE
        entry.reason = "unloaded"
        log.info("model %s version %d is unloaded", entry.name, entry.version)

    async def poll(self) -> None:
        """One look at the folder (MODEL_CONTROL=poll): load a model whose latest version is new
        or changed, unload one that is gone. A version that failed is tried again once its
        files change (a copy that was still being written)."""
        on_disk = self._sources()
        for name, versions in on_disk.items():
            if not versions:
                continue
            number = max(versions)
            now = signature(versions[number])
            ready = self.ready(name).get(number)
            failed = self._failed.get((name, number))
            if (ready and ready.signature == now) or (failed and failed.signature == now):
                continue
            await self.load(name)
        for name in [n for n in self._ready if n not in on_disk or not on_disk[n]]:
            try:
                await self.unload(name)
            except RepositoryError as exc:  # the last default: it keeps serving
                log.warning("model %s left the folder but stays: %s", name, exc)

    async def close(self) -> None:
        """Stop every engine (the service is shutting down: the server has finished or cut its
        requests, so the versions still retiring are idle)."""
        if self._retiring:
            await asyncio.gather(*self._retiring)
        for name in list(self._ready):
            for entry in self._ready.pop(name).values():
                if entry.engine is not None:
                    await entry.engine.stop()


def sources(root: Path | None, name: str, checkpoint: Path) -> Sources:
    """What the repository holds, read anew at each call: the folder's layout, or without
    one the single checkpoint as `name` version 1."""
    if root is None:
        one = {name: {1: checkpoint}}
        return lambda: one
    return lambda: scan(root)


def default_model(root: Path, named: str | None) -> tuple[str, int, Path]:
    """The model /predict answers with and its latest version on disk: `named`, or the only
    model there. ValueError says why there is none."""
    if not root.is_dir():
        raise ValueError(f"MODEL_REPOSITORY {root} is not a folder")
    found = {n: v for n, v in scan(root).items() if v}
    if named is None:
        if len(found) != 1:
            held = ", ".join(found) or f"no <name>/<version>/{WEIGHTS}"
            raise ValueError(f"set DEFAULT_MODEL: the repository holds {held}")
        named = next(iter(found))
    if named not in found:
        raise ValueError(f"DEFAULT_MODEL {named} has no <version>/{WEIGHTS} in {root}")
    number = max(found[named])
    return named, number, found[named][number]
