"""Export a version to one signed file and import such a file as a new version.

The file is :func:`~streamserve.snapshots.transfer.export_version`'s output: the
learner's payload in the snapshot envelope, signed with the export key, its metadata
naming the model's spec. It is written to a temporary file beside ``path`` and renamed, so
a reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from streamserve.lifecycle.exceptions import LifecycleError, NotFound, Refused
from streamserve.lifecycle.registry import Registry
from streamserve.snapshots.codec import SnapshotCodec
from streamserve.snapshots.exceptions import SignatureError
from streamserve.snapshots.transfer import export_version, import_version


def export_file(
    registry: Registry,
    codec: SnapshotCodec,
    model: str,
    ref: str | int,
    path: Path,
    signer: SnapshotCodec,
) -> dict[str, Any]:
    """Write ``model``'s version ``ref`` to ``path``, signed by ``signer``; what was written.
    The stored version is verified with ``codec`` (this deployment's keys) first."""
    spec = registry.versioned(model)
    version = registry.resolve(model, ref)
    data = export_version(registry.store, codec, spec, version, signer)
    try:
        _write_atomically(path, data)
    except OSError as exc:
        raise LifecycleError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return {"model": model, "version": version, "file": str(path), "bytes": len(data)}


def import_file(
    registry: Registry,
    codec: SnapshotCodec,
    model: str,
    path: Path,
    verifier: SnapshotCodec,
) -> dict[str, Any]:
    """Publish the file at ``path`` (verified with ``verifier``'s keys) as ``model``'s next
    version, signed with ``codec``; served at once, the learner continuing from it."""
    spec = registry.versioned(model)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NotFound(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        meta = import_version(registry.store, codec, spec, data, verifier)
    except SignatureError as exc:
        raise Refused(
            f"{path} is not signed by any of the import keys (--key-file; by default this "
            "deployment's signing keys)"
        ) from exc
    return {
        "model": model,
        "version": meta.version,
        "imported_from": meta.extra.get("imported_from"),
        "examples_seen": meta.examples_seen,
        "serving": registry.store.serving_version(model),
    }


def _write_atomically(path: Path, data: bytes) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
