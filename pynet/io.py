"""Versioned, pickle-free model files: an ``.npz`` holding the flat parameters and JSON metadata.

Loading never unpickles (``allow_pickle=False``), checks the format version, the shapes and a
SHA-256 of the parameters, and says clearly what is wrong. Saving writes a temporary file in the
target directory and renames it over the destination, so a crash never leaves a half-written model.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import zipfile

import numpy as np

from kernels import contract as C

FORMAT = "pynet-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file is missing, truncated, of another version, or tampered with."""


def _digest(meta: dict, arrays: dict) -> str:
    """SHA-256 over the metadata (less the digest itself) and every array: any edit is detected."""
    h = hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True).encode())
    for name in sorted(k for k in arrays if k != "meta"):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def _classes_to_json(classes):
    if classes is None:
        return None
    kind = classes.dtype.kind
    if kind not in "biufU":
        raise TypeError(f"classes_: labels of dtype {classes.dtype} cannot be saved; use numbers or strings")
    return {"kind": kind, "dtype": classes.dtype.str, "values": classes.tolist()}


def save(net, path, extra_meta=None, extra_arrays=None) -> None:
    """Write ``net`` to ``path`` atomically. Checkpoints add ``extra_meta`` (JSON) and ``extra_arrays``
    (optimizer state …); both are covered by the checksum and ignored by :func:`load`."""
    from . import __version__

    path = os.fspath(path)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "pynet_version": __version__,
        "layers": net.layers, "activations": net.activations, "output": net.output, "loss": net.loss,
        "dtype": net.dtype.name, "target": net._target, "classes": _classes_to_json(net.classes_),
        "standardize": net.standardize, "seed": net.seed, "epochs_trained": net.epochs_trained_,
    }
    meta.update(extra_meta or {})
    arrays = {"params": net.params, **(extra_arrays or {})}
    if net.mean_ is not None:
        arrays["mean"], arrays["scale"] = net.mean_, net.scale_
    meta["sha256"] = _digest(meta, arrays)
    arrays["meta"] = np.array(json.dumps(meta))
    _atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))


def _atomic_write(path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, and rename it over ``path``.

    The file gets the permissions any new file would (0666 less the umask), or those of the file it
    replaces: mkstemp's private 0600 would otherwise survive the rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = _open_temporary(directory)
    try:
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
        except FileNotFoundError:
            pass
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _open_temporary(directory):
    """(fd, path) of a new file with a random name in ``directory``, created with mode 0666 so that the
    process's umask applies as to any other file."""
    for _ in range(100):
        tmp = os.path.join(directory, f".pynet-{secrets.token_hex(8)}.npz.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"path: could not create a temporary file in {directory!r}")


def load(path, backend=None):
    """Read a model written by :meth:`MLP.save`; raises ModelFileError saying what is wrong."""
    return read(path, backend)[0]


def read(path, backend=None):
    """(model, metadata, arrays) of a model file; checkpoints keep their extra entries in both."""
    from .model import MLP

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"path: no model file at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise ModelFileError(f"path: {path!r} is not a readable pynet model file (truncated or corrupted: "
                             f"{type(exc).__name__}: {exc})") from exc
    if "meta" not in arrays or "params" not in arrays:
        raise ModelFileError(f"path: {path!r} lacks the 'meta' or 'params' entry; not a pynet model file")
    try:
        meta = json.loads(str(arrays["meta"]))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"path: the metadata of {path!r} is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"path: {path!r} is not a pynet model file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"path: {path!r} has model format version {meta.get('format_version')!r} "
                             f"(written by pynet {meta.get('pynet_version')}); this pynet reads version "
                             f"{FORMAT_VERSION}")
    if _digest(meta, arrays) != meta.get("sha256"):
        raise ModelFileError(f"path: the content of {path!r} does not match its checksum (tampered or corrupted)")
    try:
        net = MLP(meta["layers"], activation=meta["activations"], output=meta["output"], backend=backend,
                  dtype=meta["dtype"], seed=meta["seed"], standardize=meta["standardize"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"path: the metadata of {path!r} describes no valid model ({exc})") from exc
    params = arrays["params"]
    if params.shape != net.params.shape or params.dtype != net.dtype:
        raise ModelFileError(f"path: parameters of shape {params.shape} and dtype {params.dtype} do not match "
                             f"layers {meta['layers']} in {meta['dtype']} ({net.params.shape})")
    net.params[...] = params
    if meta["loss"] is not None:
        C.code(C.LOSSES, meta["loss"], "loss")
    net.loss, net._target, net.epochs_trained_ = meta["loss"], meta["target"], meta["epochs_trained"]
    classes = meta.get("classes")
    if classes is not None:
        net.classes_ = np.array(classes["values"], dtype=np.dtype(classes["dtype"]))
    if "mean" in arrays:
        if arrays["mean"].shape != (net.layers[0],) or arrays["scale"].shape != (net.layers[0],):
            raise ModelFileError("path: standardisation statistics do not match the input layer")
        net.mean_, net.scale_ = arrays["mean"].astype(net.dtype), arrays["scale"].astype(net.dtype)
    return net, meta, arrays
