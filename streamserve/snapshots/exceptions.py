"""Errors raised by the snapshots subpackage."""

from streamserve.errors import StreamserveError


class SnapshotError(StreamserveError):
    """A snapshot could not be written, read or used; also raised for bad arguments."""


class SignatureError(SnapshotError):
    """A snapshot blob's HMAC does not verify against any configured signing key."""


class SnapshotFormatError(SnapshotError):
    """A snapshot blob or its metadata is malformed (bad envelope, header or checksum)."""


class SnapshotNotFoundError(SnapshotError):
    """A snapshot version named by a pointer or an argument is not in the store."""


class SnapshotLoadError(SnapshotError):
    """A verified snapshot payload could not be turned into a model by the loader."""


class FencedError(SnapshotError):
    """A publish was refused: the lease is not held or the version is not newer."""


class RolledBackError(SnapshotError):
    """A checkpoint was refused: the model was rolled back since the learner's state was
    taken; it continues from ``version``."""

    def __init__(self, model: str, version: int | None) -> None:
        super().__init__(f"{model}: rolled back to v{version}; continue from there")
        self.model = model
        self.version = version
