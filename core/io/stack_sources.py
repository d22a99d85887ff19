"""What a user names as a stack (several rasters, or the bands of one multiband raster, with masks) turned into
the images of :mod:`stack_io`, checked before any pixel is read: one date each, georeferenced unless accepted
otherwise, no date twice, masks paired with images by a rule stated once."""
from __future__ import annotations

import os
from typing import Iterable, Sequence

from ..errors import StackError
from .stack_io import ImageSource, georeferenced, open_dataset


def _same_existing(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def parse_int_list(text: str | Iterable[int] | None) -> list[int]:
    """Parse '1,3,5-7' (or an iterable of ints) into [1, 3, 5, 6, 7]."""
    if text is None:
        return []
    if not isinstance(text, str):
        return [int(v) for v in text]
    out: list[int] = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, "")
                out.extend(range(int(lo), int(hi) + 1))
            else:
                out.append(int(part))
        except ValueError as exc:
            raise StackError(f"cannot read '{part}' as an integer or a range like 5-7") from exc
    return out


def sources_from_inputs(
    paths: Sequence[str] | None = None,
    multiband: str | None = None,
    bands: Sequence[int] | None = None,
    masks: Sequence[str] | None = None,
    allow_ungeoreferenced: bool = False,
) -> list[ImageSource]:
    """Build the image list from T rasters *or* one multiband raster and a band list.

    ``masks``: one mask raster per image, or a single multiband mask: with a multiband image, the mask's band
    ``b`` belongs to the image's band ``b`` (it must have as many bands as the image, whichever bands are used);
    with several rasters, its band ``t`` belongs to image ``t`` (one band per image). Refused: a raster of several bands in ``paths`` (each is one date;
    its other bands would be lost silently), and rasters without georeferencing unless
    ``allow_ungeoreferenced`` (the outputs' georeferencing would be invented).
    """
    paths = [p for p in (paths or []) if p]
    if paths and multiband:
        raise StackError("give either several rasters or one multiband raster, not both")
    for path in paths + ([multiband] if multiband else []):
        ds = open_dataset(path, "raster")
        count, located = ds.RasterCount, georeferenced(ds)
        del ds
        if path != multiband and count > 1:
            raise StackError(f"'{os.path.basename(path)}' has {count} bands, but each input image is one date: give it as "
                             "the multiband raster (CLI --multiband, QGIS 'Or: one multiband raster') to use its bands as dates")
        if not located and not allow_ungeoreferenced:
            raise StackError(f"'{os.path.basename(path)}' has no georeferencing, so the outputs could not be placed on the "
                             "map; accept it explicitly (CLI --allow-ungeoreferenced, QGIS 'Accept rasters without "
                             "georeferencing') to work in pixel coordinates")
    if multiband:
        ds = open_dataset(multiband, "raster")
        count = ds.RasterCount
        del ds
        bands = list(bands) if bands else list(range(1, count + 1))
        wrong = [int(b) for b in bands if not 1 <= int(b) <= count]
        if wrong:
            raise StackError(f"band {wrong[0]} does not exist: '{os.path.basename(multiband)}' has bands 1 to {count}")
        images = [(multiband, int(b)) for b in bands]
    else:
        images = [(p, 1) for p in paths]
    for i, (p, b) in enumerate(images):  # one date given twice would weigh twice and pass for a perfect registration
        for q, c in images[:i]:
            if b == c and (os.path.realpath(p) == os.path.realpath(q) or _same_existing(p, q)):
                raise StackError(f"'{os.path.basename(p)}'" + (f" band {b}" if multiband else "")
                                 + " is given twice; give each date once")
    masks = [m for m in (masks or []) if m]
    if not masks:
        return [ImageSource(p, b) for p, b in images]
    if len(masks) == len(images):
        return [ImageSource(p, b, m, 1) for (p, b), m in zip(images, masks)]
    if len(masks) == 1:
        ds = open_dataset(masks[0], "mask")
        mask_bands = ds.RasterCount
        del ds
        name = os.path.basename(masks[0])
        if multiband:
            # by band number: the mask's band b is the image's band b, whichever bands are used (pairing the
            # selected bands in order with the mask's first bands dropped clear dates as cloud)
            if mask_bands != count:
                raise StackError(f"the mask '{name}' has {mask_bands} bands and the multiband raster {count}: a "
                                 "multiband mask pairs with the image by band number, so give a mask with one band "
                                 "per band of the image (or one single-band mask raster per date used)")
            return [ImageSource(p, b, masks[0], b) for p, b in images]
        if mask_bands != len(images):
            raise StackError(f"the mask '{name}' has {mask_bands} bands for {len(images)} images: a multiband mask "
                             "pairs its band t with image t, so give one band per image (or one mask raster per image)")
        return [ImageSource(p, b, masks[0], t + 1) for t, (p, b) in enumerate(images)]
    raise StackError(f"{len(masks)} mask rasters given for {len(images)} images; give one per image or one multiband mask")
