"""Where a 28x28 image's evidence lies: occlusion sensitivity, and the deletion test that checks it.

Occlusion sensitivity (Zeiler and Fergus, 2014) blanks one patch at a time and sees how far the
predicted class's probability falls; a pixel's saliency is the mean fall over the patches that
cover it. It needs forward passes only, so it works with every backend the service runs, INT8
ONNX included, and all the blanked copies go through the network as one batch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from model.images.silhouette import NATIVE_SIZE

# A 7 px patch every 3 px: 8 x 8 = 64 copies, one forward pass of 65 images with the original.
# Garments in Fashion-MNIST are 10-28 px across, so a patch covers a sleeve, a heel or a strap.
PATCH = 7
STRIDE = 3

# (n, 28, 28) uint8 images -> (n, 10) class probabilities.
Forward = Callable[[np.ndarray], np.ndarray]


def occlusion_masks(
    size: int = NATIVE_SIZE, patch: int = PATCH, stride: int = STRIDE
) -> np.ndarray:
    """(P, size, size) bool: each patch position, the last one flush with the far edge."""
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    masks = np.zeros((len(starts) ** 2, size, size), dtype=bool)
    for i, (top, left) in enumerate((t, s) for t in starts for s in starts):
        masks[i, top : top + patch, left : left + patch] = True
    return masks


MASKS = occlusion_masks()
MASKS.setflags(write=False)


def occluded_copies(image: np.ndarray, masks: np.ndarray = MASKS) -> np.ndarray:
    """(P, 28, 28) uint8: the image with each patch set to the background, black."""
    return np.where(masks, np.uint8(0), image[None])


def occlusion_saliency(probs: np.ndarray, masks: np.ndarray = MASKS) -> np.ndarray:
    """(28, 28) float32 in [0, 1] from the probabilities of the original (row 0) and of its
    occluded copies (rows 1..P, in the masks' order): the mean fall of the original's top
    class over the patches that cover each pixel, scaled so the largest is 1 (all 0 when no
    patch lowers it). A blanked patch that was black already changes nothing, so background
    pixels whose every patch is background score 0."""
    top = int(np.argmax(probs[0]))
    fall = np.clip(probs[0, top] - probs[1:, top], 0, None).astype(np.float32)
    cover = masks.sum(axis=0, dtype=np.float32)
    saliency = np.tensordot(fall, masks.astype(np.float32), axes=1) / cover
    peak = float(saliency.max())
    return saliency / peak if peak > 0 else saliency


def explain(forward: Forward, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The probabilities (n, 10) and occlusion saliency maps (n, 28, 28) of (n, 28, 28) images."""
    step = 1 + len(MASKS)
    batch = np.concatenate([np.concatenate([x[None], occluded_copies(x)]) for x in images])
    probs = np.asarray(forward(batch)).reshape(len(images), step, -1)
    return probs[:, 0], np.stack([occlusion_saliency(p) for p in probs])


def blank(images: np.ndarray, scores: np.ndarray, fraction: float) -> np.ndarray:
    """The images with the `fraction` of pixels that score highest (per image) set to black."""
    n = images.shape[0]
    k = round(fraction * images[0].size)
    flat = images.reshape(n, -1).copy()
    # A stable sort from the highest score: ties keep reading order, whatever the scores.
    order = np.argsort(-scores.reshape(n, -1), axis=1, kind="stable")[:, :k]
    np.put_along_axis(flat, order, 0, axis=1)
    return flat.reshape(images.shape)


def deletion_falls(
    forward: Forward,
    images: np.ndarray,
    fraction: float = 0.2,
    seed: int = 0,
    saliency: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The deletion test: how far each image's predicted-class probability falls when the
    `fraction` of its pixels of highest saliency are blanked, and when as many random pixels are
    (seeded). A saliency map that means something makes the first fall well below the second.
    The saliency is occlusion's unless given (n, 28, 28)."""
    probs, occlusion = explain(forward, images)
    scores = occlusion if saliency is None else saliency
    top = probs.argmax(axis=1)
    random_scores = np.random.default_rng(seed).random(images.shape)
    rows = np.arange(len(images))
    salient = np.asarray(forward(blank(images, scores, fraction)))[rows, top]
    random = np.asarray(forward(blank(images, random_scores, fraction)))[rows, top]
    base = probs[rows, top]
    return base - salient, base - random
