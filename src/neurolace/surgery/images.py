"""Images of the cortical surface: read a file, turn an array into one grey channel in [0, 1].

Colour photographs keep only the **green** channel. Haemoglobin absorbs green light far more
than red, so in a photograph of the exposed cortex (or of the retina) the vessels have the
most contrast against the tissue in green; the red channel is nearly flat and blue is noisy.
The same holds for fundus photographs, where vessel segmentation conventionally uses the green
channel (Staal et al. 2004, IEEE Trans Med Imaging 23:501, the DRIVE data set).

Integer images are divided by their type's maximum (255 for 8-bit, 65535 for 16-bit); float
images already in [0, 1] are kept, other float images are rescaled from their own minimum and
maximum. An alpha channel is dropped.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from neurolace.surgery.errors import ImageError

__all__ = ["load_image", "to_grey"]


def to_grey(image, name: str = "image") -> np.ndarray:
    """Return ``image`` as one float64 channel in [0, 1].

    Parameters
    ----------
    image : array-like, shape (H, W), (H, W, 3) or (H, W, 4)
        Grey, RGB or RGBA; integer, boolean or float, finite.
    name : str
        What to call the image in messages.

    Returns
    -------
    ndarray, shape (H, W), float64
        Grey level in [0, 1]; for colour input, the green channel (see the module docstring).

    Raises
    ------
    ImageError
        Not 2-D, RGB or RGBA; smaller than 3 x 3 pixels; not numeric; NaN or infinity.
    """
    if isinstance(image, (str, bytes, os.PathLike)) or image is None:
        raise ImageError(f"{name} must be an array (use load_image for a file), got {type(image).__name__}")
    array = np.asarray(image)
    if array.dtype.kind not in "biuf":
        raise ImageError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[2] in (3, 4):
        array = array[:, :, 1]
    elif array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2:
        raise ImageError(
            f"{name} must be grey (H, W), RGB (H, W, 3) or RGBA (H, W, 4), got shape {array.shape}"
        )
    if min(array.shape) < 3:
        raise ImageError(f"{name} must be at least 3 x 3 pixels, got shape {array.shape}")
    if array.dtype.kind == "b":
        return array.astype(np.float64)
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        if array.dtype.kind == "i" and array.min() < 0:
            raise ImageError(f"{name} holds negative integer values (minimum {array.min()})")
        return array.astype(np.float64) / float(info.max)
    grey = array.astype(np.float64)
    if not np.isfinite(grey).all():
        bad = ", ".join(str(int(i)) for i in np.argwhere(~np.isfinite(grey))[0])
        raise ImageError(f"{name} must be finite, but holds NaN or infinity (first at pixel [{bad}])")
    low, high = float(grey.min()), float(grey.max())
    if low >= 0.0 and high <= 1.0:
        return grey
    return (grey - low) / (high - low) if high > low else np.zeros_like(grey)


def load_image(path) -> np.ndarray:
    """Read an image file (PNG, JPEG, TIFF, BMP, ... whatever imageio reads) as grey in [0, 1].

    Parameters
    ----------
    path : str or path-like
        The image file.

    Returns
    -------
    ndarray, shape (H, W), float64
        Grey level in [0, 1]; colour photographs give their green channel (module docstring).

    Raises
    ------
    ImageError
        The file is missing, is a directory, is not an image imageio can decode, or holds
        several frames (a video or a stack).
    """
    import imageio.v3 as iio  # scikit-image's own reader; imported here to keep neurolace light

    target = Path(path)
    if not target.exists():
        raise ImageError(f"image {str(path)!r} does not exist", path=str(path))
    if target.is_dir():
        raise ImageError(f"image {str(path)!r} is a directory, not an image file", path=str(path))
    try:
        with warnings.catch_warnings():  # imageio's plugin probing warns about deprecated plugins
            warnings.simplefilter("ignore", DeprecationWarning)
            array = iio.imread(target)
    except Exception as exc:  # imageio raises many types (OSError, ValueError, plugin errors)
        raise ImageError(f"{str(path)!r} is not an image that can be read: {exc}", path=str(path)) from exc
    array = np.asarray(array)
    if array.ndim == 4 or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ImageError(
            f"{str(path)!r} holds several frames (shape {array.shape}); give one still image", path=str(path)
        )
    try:
        return to_grey(array, name=f"image {str(path)!r}")
    except ImageError as exc:
        raise ImageError(str(exc), path=str(path)) from exc
