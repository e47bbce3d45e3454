"""Input checks for the public boundary.

Each helper names the parameter, what is allowed and what was given, so a
user reading the message knows what to fix (the MNE ``_validate_type`` and
scikit-learn ``_param_validation`` tradition). Internal invariants use
``assert`` instead.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from neurolace.core.errors import InvalidInputError

__all__ = [
    "check_positive",
    "check_nonnegative",
    "check_int",
    "check_array",
    "check_finite",
    "check_in",
]


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_positive(value: Any, name: str, *, allow_inf: bool = False) -> float:
    """Return ``value`` as a float after checking it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(f"{name} must be a positive number, got {_describe(value)}")
    number = float(value)
    if not (number > 0) or (np.isinf(number) and not allow_inf):
        raise InvalidInputError(f"{name} must be a positive finite number, got {number!r}")
    return number


def check_nonnegative(value: Any, name: str) -> float:
    """Return ``value`` as a float after checking it is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(f"{name} must be a number >= 0, got {_describe(value)}")
    number = float(value)
    if not (number >= 0) or np.isinf(number):
        raise InvalidInputError(f"{name} must be a finite number >= 0, got {number!r}")
    return number


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int after checking type and range (inclusive)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(f"{name} must be an integer, got {_describe(value)}")
    number = int(value)
    if minimum is not None and number < minimum:
        raise InvalidInputError(f"{name} must be >= {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise InvalidInputError(f"{name} must be <= {maximum}, got {number}")
    return number


def check_in(value: Any, name: str, allowed: tuple | list | set) -> Any:
    """Check ``value`` is one of ``allowed``."""
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise InvalidInputError(f"{name} must be one of {choices}; got {value!r}")
    return value


def check_finite(array: np.ndarray, name: str) -> np.ndarray:
    """Raise if a floating array holds NaN or infinity; say where the first one is."""
    if array.dtype.kind in "fc" and array.size and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        where = ", ".join(str(int(i)) for i in bad)
        raise InvalidInputError(
            f"{name} must be finite, but holds NaN or infinity (first at index [{where}])"
        )
    return array


def check_array(
    array: Any,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    dtype: str | type | tuple | None = None,
    shape: tuple[int | None, ...] | None = None,
    finite: bool = True,
    allow_empty: bool = True,
    copy: bool = False,
) -> np.ndarray:
    """Validate an array-like at the public boundary and return it as an ndarray.

    Parameters
    ----------
    array : array-like
        The value to check.
    name : str
        Parameter name, used in messages.
    ndim : int or tuple of int, optional
        Allowed number(s) of dimensions.
    dtype : dtype, str or tuple, optional
        If a numpy dtype or string, the array is *converted* to it (only when the
        conversion is lossless for integer targets). The special strings
        ``"numeric"`` (any int/uint/float, converted to float64 if not numeric)
        and ``"integer"`` (any int/uint kind, never converted) only check the kind.
    shape : tuple, optional
        Expected shape; ``None`` entries match any length.
    finite : bool
        Reject NaN and infinity.
    allow_empty : bool
        Accept arrays with zero elements.
    copy : bool
        Return a copy even when no conversion was needed.
    """
    if isinstance(array, (str, bytes)) or array is None:
        raise InvalidInputError(f"{name} must be an array, got {_describe(array)}")
    try:
        result = np.array(array, copy=copy) if copy else np.asarray(array)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be convertible to a numeric array: {exc}") from exc
    if result.dtype == object:
        raise InvalidInputError(f"{name} must be a numeric array, got dtype object (ragged or mixed input)")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if result.ndim not in allowed:
            raise InvalidInputError(
                f"{name} must have {' or '.join(map(str, allowed))} dimension(s), "
                f"got {result.ndim} (shape {result.shape})"
            )
    if shape is not None:
        if len(shape) != result.ndim or any(
            expected is not None and expected != got for expected, got in zip(shape, result.shape)
        ):
            wanted = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise InvalidInputError(f"{name} must have shape {wanted}, got {result.shape}")
    if dtype == "numeric":
        if result.dtype.kind not in "iuf":
            if result.dtype.kind == "b":
                result = result.astype(np.float64)
            else:
                raise InvalidInputError(f"{name} must be numeric, got dtype {result.dtype}")
    elif dtype == "integer":
        if result.dtype.kind not in "iu":
            raise InvalidInputError(f"{name} must hold integers, got dtype {result.dtype}")
    elif dtype is not None:
        target = np.dtype(dtype)
        if target.kind in "iu" and result.dtype.kind not in "iu":
            raise InvalidInputError(f"{name} must hold integers ({target}), got dtype {result.dtype}")
        if target.kind in "iu" and result.dtype != target and result.size:
            info = np.iinfo(target)
            low, high = result.min(), result.max()
            if low < info.min or high > info.max:
                raise InvalidInputError(
                    f"{name} must fit in {target} ([{info.min}, {info.max}]), got values in [{low}, {high}]"
                )
        result = result.astype(target, copy=False)
    if finite:
        check_finite(result, name)
    if not allow_empty and result.size == 0:
        raise InvalidInputError(f"{name} must not be empty, got shape {result.shape}")
    return result
