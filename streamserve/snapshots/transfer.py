"""Moving a version between deployments: one signed file out, a new version in.

``export`` verifies a stored version with the deployment's keys and writes one file: the
learner's payload in the same signed envelope as a snapshot (:class:`SnapshotCodec`),
signed with the export key, its metadata carrying the model's spec (task, learner,
params, preprocess) and where it came from. ``import`` verifies the file with the
configured import keys before anything reads it, checks that the spec fits the target
model, and publishes the payload as the target's next version, signed with the target
deployment's key, served at once, with the learner continuing from it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from streamserve.learners.spec import ModelSpec
from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta
from streamserve.snapshots.exceptions import SnapshotError, SnapshotNotFoundError
from streamserve.snapshots.store import SnapshotStore

SPEC_KEY = "spec"
IMPORTED_FROM_KEY = "imported_from"


def spec_record(spec: ModelSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "task": spec.task.value,
        "learner": spec.learner,
        "params": dict(spec.params),
        "preprocess": spec.preprocess,
    }


def export_version(
    store: SnapshotStore, codec: SnapshotCodec, spec: ModelSpec, version: int, signer: SnapshotCodec
) -> bytes:
    """The file for ``spec.name`` v``version``, signed by ``signer``."""
    blob = store.get_blob(spec.name, version)
    if blob is None:
        raise SnapshotNotFoundError(f"{spec.name}: version {version} is not in the store")
    meta, payload = codec.decode(blob)
    extra = dict(meta.extra) | {SPEC_KEY: spec_record(spec)}
    return signer.encode(dataclasses.replace(meta, extra=extra, checksum=""), payload)


def import_version(
    store: SnapshotStore,
    codec: SnapshotCodec,
    spec: ModelSpec,
    data: bytes,
    verifier: SnapshotCodec,
) -> SnapshotMeta:
    """Publish the exported file ``data`` as ``spec.name``'s next version; its meta."""
    meta, payload = verifier.decode(data)  # verifies the signature before reading
    source = meta.extra.get(SPEC_KEY)
    _check_fits(spec, source)
    version = (store.latest_version(spec.name) or 0) + 1
    extra = {k: v for k, v in meta.extra.items() if k != SPEC_KEY}
    extra[IMPORTED_FROM_KEY] = {"model": meta.model, "version": meta.version}
    new = dataclasses.replace(
        meta,
        model=spec.name,
        version=version,
        parent=None,
        created_at=time.time(),
        checksum="",
        extra=extra,
    )
    store.publish(new, codec.encode(new, payload), continue_from=True)
    return new


def _check_fits(spec: ModelSpec, source: Any) -> None:
    if not isinstance(source, dict):
        raise SnapshotError("the file names no model spec; it is not an exported version")
    mine = spec_record(spec)
    for key in ("task", "learner", "preprocess"):
        if source.get(key) != mine[key]:
            raise SnapshotError(
                f"the file's model has {key} {source.get(key)!r}; "
                f"model {spec.name!r} here has {mine[key]!r}"
            )
