"""Generated data sets cached on disk, keyed by the recipe that makes them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from model.data.fashion_mnist import DEFAULT_CACHE_DIR
from model.data.renderings import RENDERINGS_VERSION
from model.images.silhouette import SILHOUETTE_VERSION


def cached_array(name: str, build: Callable[[], np.ndarray]) -> np.ndarray:
    """build()'s array, cached in the data cache under name, which holds the recipe (counts,
    seeds, weights), and the versions of the renderings and of the silhouette that make it."""
    path = DEFAULT_CACHE_DIR / f"{name}-r{RENDERINGS_VERSION}-s{SILHOUETTE_VERSION}.npy"
    if path.is_file():
        return np.load(path)
    array = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".tmp.npy"), array)
    path.with_suffix(".tmp.npy").replace(path)
    return array
