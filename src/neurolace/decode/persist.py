"""Fitted decoders on disk in a format that cannot run code: arrays in ``.npz``, the rest as JSON.

A session file may name a decoder fitted earlier (the decoder node's ``model_path``); a pickle there
would run whatever code its author put in it when loaded, so neurolace never loads pickles.
:func:`save_decoder` writes a decoder's state instead: every array into an ``.npz`` archive (read back
with ``allow_pickle=False``), and a JSON tree of the objects that hold them, each named by its class.
:func:`load_decoder` rebuilds only classes it trusts (``neurolace``'s own, and the scikit-learn
estimators the decoders use inside), without calling their constructors, so a file can at worst hold
wrong numbers, never code. skops does the same for scikit-learn models; it is not a dependency of
neurolace, and this covers the few types our decoders hold, so it is written here.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from neurolace.core.errors import InvalidInputError

__all__ = ["DECODER_FILE_FORMAT", "TRUSTED_FOREIGN_CLASSES", "load_decoder", "save_decoder"]

#: Marker and version of the file layout, stored in the archive.
DECODER_FILE_FORMAT = "neurolace-decoder/1"

#: Classes outside neurolace that a decoder file may rebuild (the estimators the decoders hold).
TRUSTED_FOREIGN_CLASSES = frozenset({"sklearn.discriminant_analysis:LinearDiscriminantAnalysis"})

_TREE = "__tree__"


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _trusted(name: str) -> bool:
    module = name.partition(":")[0]
    return module == "neurolace" or module.startswith("neurolace.") or name in TRUSTED_FOREIGN_CLASSES


class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def encode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise InvalidInputError(f"cannot save {where}: an array of Python objects")
            key = f"a{len(self.arrays)}"
            self.arrays[key] = value
            return {"__array__": key}
        if isinstance(value, np.generic):
            return {"__scalar__": value.dtype.str, "value": value.item()}
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {"__dict__": [[self.encode(k, where), self.encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
        name = _class_name(type(value))
        if not _trusted(name) or not hasattr(value, "__dict__"):
            raise InvalidInputError(f"cannot save {where}: {name} is not a type a decoder file may hold")
        return {"__object__": name, "state": self.encode(dict(vars(value)), f"{where}.{type(value).__name__}")}


def save_decoder(decoder: Any, path: str | os.PathLike) -> Path:
    """Write a fitted decoder (or a wrapper of several) to ``path`` (``.npz``), atomically.

    Parameters
    ----------
    decoder : object
        A neurolace decoder, click decoder or a neurolace object holding them.
    path : path-like

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    encoder = _Encoder()
    tree = {"format": DECODER_FILE_FORMAT, "root": encoder.encode(decoder, "decoder")}
    text = np.frombuffer(json.dumps(tree).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False) as out:
        temporary = Path(out.name)
        try:
            np.savez(out, **{_TREE: text}, **encoder.arrays)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    os.replace(temporary, path)
    return path


def _decode(value: Any, arrays: Any, path: Path) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays, path) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return arrays[value["__array__"]]
    if "__scalar__" in value:
        return np.dtype(value["__scalar__"]).type(value["value"])
    if "__tuple__" in value:
        return tuple(_decode(v, arrays, path) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_decode(k, arrays, path): _decode(v, arrays, path) for k, v in value["__dict__"]}
    if "__object__" in value:
        name = value["__object__"]
        if not isinstance(name, str) or not _trusted(name):
            raise InvalidInputError(f"decoder file {path} names the class {name!r}, which it may not rebuild")
        module_name, _, qualname = name.partition(":")
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
        if not isinstance(target, type):
            raise InvalidInputError(f"decoder file {path}: {name!r} is not a class")
        obj = target.__new__(target)
        obj.__dict__.update(_decode(value["state"], arrays, path))
        return obj
    raise InvalidInputError(f"decoder file {path} is damaged: unknown node {sorted(value)}")


def load_decoder(path: str | os.PathLike) -> Any:
    """Read a decoder written by :func:`save_decoder`; refuse pickles and anything else.

    Raises
    ------
    InvalidInputError
        The file is missing, is not a neurolace decoder file (a pickle, for example: loading a
        pickle can run code, so pickled models are refused), or names a class it may not rebuild.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"decoder file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise InvalidInputError(
            f"{path} is not a neurolace decoder file (.npz from neurolace.decode.save_decoder); pickled "
            "models are refused because loading a pickle can run any code in it: fit the decoder again "
            "and save it with save_decoder"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        tree = json.loads(bytes(arrays.pop(_TREE)).decode())
    except (KeyError, ValueError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path} is not a neurolace decoder file: {exc}") from None
    if not isinstance(tree, dict) or tree.get("format") != DECODER_FILE_FORMAT:
        raise InvalidInputError(f"{path}: expected format {DECODER_FILE_FORMAT!r}, got {tree.get('format')!r}"
                                if isinstance(tree, dict) else f"{path} is not a neurolace decoder file")
    return _decode(tree["root"], arrays, path)
