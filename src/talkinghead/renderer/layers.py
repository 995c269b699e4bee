"""The two layers a frame is made of: the person, sampled premultiplied by its matte, over a
still background plate (the photo with the person replaced by a guess at what is behind them).
Where the head moves away it reveals the plate, where it moves on it covers it, and background
nobody covers never changes."""

from __future__ import annotations

import cv2
import numpy as np

PLATE_CELL = 0.15  # the background plate is inpainted on cells this big (inter-ocular)
PLATE_PERSON = 0.15  # matte from which the plate guesses the background behind the person
PLATE_GROW = 0.05  # the plate's guess reaches this far beyond the segmenter's person (IOD)
PLATE_MIRROR = 0.6  # how far in the mirrored background fades into the smooth fill (inter-ocular)
BACKGROUND = 0.02  # person-mask values below this are background and never move


def background_plate(image: np.ndarray, matte: np.ndarray, iod: float) -> np.ndarray:
    """(H, W, 3) float: ``image`` (uint8) with the person replaced by a guess at the
    background behind them. Only where the ``matte`` reaches PLATE_PERSON is the guess used; the
    outer part of the segmenter's soft fringe shows real background, which the plate keeps.

    What a moving head reveals is a sliver along its edge, so near the edge the guess mirrors
    the background across the person's outline, row by row (its texture carries on, with no
    seam); deeper in, it fades into a smooth inpainting on cells of PLATE_CELL. Both are made from
    background clear of the fringe (matte below BACKGROUND), so the person's colours do not
    bleed in."""
    h, w = matte.shape
    # Grown by PLATE_GROW both ways: the finest hair strands at the person's edge are below
    # the segmenter's threshold, and a plate keeping them leaves a ghost of the hair's
    # outline where the head moves away. The strands move with the person layer instead.
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * round(PLATE_GROW * iod) + 1,) * 2)
    person = cv2.dilate((matte >= PLATE_PERSON).astype(np.uint8), grow).astype(bool)
    clear = cv2.erode((matte < BACKGROUND).astype(np.uint8), grow).astype(bool)
    if not person.any() or not clear.any():
        return image.astype(np.float64)
    cell = max(1, round(PLATE_CELL * iod))
    small = (max(1, w // cell), max(1, h // cell))
    image_small = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
    fringe = cv2.resize((~clear).astype(np.float32), small, interpolation=cv2.INTER_AREA)
    hole = cv2.dilate((fringe > 0).astype(np.uint8), np.ones((3, 3), np.uint8))
    smooth = cv2.inpaint(image_small, hole, 3, cv2.INPAINT_TELEA)
    smooth = cv2.resize(smooth, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    # Mirror, along each row: a hidden pixel takes the background as far beyond the nearer
    # clear pixel of its row. Rows, because heads mostly turn sideways (the sliver they
    # reveal is at the side) and horizontal structure (blinds, flags, shelves) carries on
    # straight; a mirror across a curved outline would bend it into rings.
    xs = np.broadcast_to(np.arange(w), (h, w))
    left = np.maximum.accumulate(np.where(clear, xs, -1), axis=1)
    right = np.minimum.accumulate(np.where(clear, xs, w)[:, ::-1], axis=1)[:, ::-1]
    has_left, has_right = left >= 0, right < w
    use_left = has_left & (~has_right | (xs - left <= right - xs))
    edge = np.where(use_left, left, right)
    found = has_left | has_right
    mirror = np.clip(np.where(use_left, 2 * left - xs, 2 * right - xs), 0, w - 1)
    rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
    mirror = np.where(clear[rows, mirror], mirror, np.clip(edge, 0, w - 1))
    mirrored = image[rows, mirror].astype(np.float64)
    reach = np.where(found, np.abs(xs - edge), np.inf)
    near = np.exp(-((reach / (PLATE_MIRROR * iod)) ** 2))[..., None]
    guess = near * mirrored + (1.0 - near) * smooth
    return np.where(person[..., None], guess, image.astype(np.float64))


def joined_to(mask: np.ndarray, point: np.ndarray) -> np.ndarray:
    """(H, W) float: 1 on the connected part of ``mask`` that holds ``point`` (x, y), softened
    by a few pixels; all 1 when the point is not on the mask."""
    x, y = (int(np.clip(c, 0, n - 1)) for c, n in zip(point, mask.shape[::-1], strict=True))
    if not mask[y, x]:
        return np.ones(mask.shape)
    _, labels = cv2.connectedComponents(mask.astype(np.uint8))
    joined = cv2.dilate((labels == labels[y, x]).astype(np.uint8), np.ones((5, 5), np.uint8))
    return cv2.GaussianBlur(joined.astype(np.float64), (0, 0), 1.5)


def person_layers(image: np.ndarray, matte: np.ndarray, iod: float) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 4) the person premultiplied by its matte and 1 - matte, sampled together (a
    warped pixel is ``person + (1 - matte) * plate``), and (H, W, 3) the plate, all in [0, 1],
    from the uint8 ``image`` and the person's (H, W) ``matte``. Background (matte below
    BACKGROUND) is exactly zero in both layers, so where neither a pixel nor its source is
    person the photo stays exactly as it was."""
    plate = background_plate(image, matte, iod)
    photo, plate = image / 255.0, plate / 255.0
    matte = np.where(matte < BACKGROUND, 0.0, matte)[..., None]
    # The photo is matte * person + (1 - matte) * plate. Where the photo is darker than
    # the plate's share alone (a bright guess behind dark hair at the fringe), the
    # person's premultiplied colour would be negative and, moved over other background,
    # show as dark or coloured blots: there the matte is raised until the plate's share
    # fits (more of the pixel is person, moving with the head). Darkening the guess
    # instead leaves a ghost of the hair's edge where the head moves away.
    darker = 1.0 - (photo / np.maximum(plate, 1e-6)).min(axis=-1, keepdims=True)
    matte = np.clip(np.maximum(matte, darker), 0.0, 1.0)
    person_rgb = photo - (1.0 - matte) * plate
    return np.concatenate([person_rgb, 1.0 - matte], axis=-1), plate
