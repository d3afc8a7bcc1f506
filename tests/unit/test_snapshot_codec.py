"""Unit tests for the signed snapshot envelope and its metadata."""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import pickle
import struct
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamserve.errors import StreamserveError
from streamserve.snapshots import (
    SignatureError,
    SnapshotCodec,
    SnapshotError,
    SnapshotFormatError,
    SnapshotMeta,
    peek_meta,
)
from streamserve.snapshots.codec import ENVELOPE_VERSION, MAGIC

KEY = b"k" * 32
OLD_KEY = b"o" * 32
OTHER_KEY = b"x" * 32
PREFIX_LEN = len(MAGIC) + 1
BODY_START = PREFIX_LEN + 32


def make_meta(**overrides: object) -> SnapshotMeta:
    fields: dict[str, object] = {
        "model": "fraud",
        "version": 3,
        "parent": 2,
        "created_at": 1_700_000_000.5,
        "examples_seen": 1234,
        "offsets": {0: 10, 3: 77},
        "metrics": {"accuracy": 0.91, "logloss": 0.3},
        "format": "river-pickle/1",
        "learner": "river.linear_model.LogisticRegression",
        "extra": {"note": "unit", "nested": [1, 2]},
    }
    fields.update(overrides)
    return SnapshotMeta(**fields)  # type: ignore[arg-type]


def sign_raw(key: bytes, header: bytes, payload: bytes) -> bytes:
    """Build an envelope by hand, to test what decode does after a valid signature."""
    body = struct.pack(">I", len(header)) + header + payload
    mac = hmac.new(key, body, hashlib.sha256).digest()
    return MAGIC + bytes((ENVELOPE_VERSION,)) + mac + body


PAYLOAD = bytes(range(256)) * 3


def test_round_trip_restores_meta_and_payload_and_fills_checksum() -> None:
    codec = SnapshotCodec([KEY])
    meta = make_meta()
    blob = codec.encode(meta, PAYLOAD)

    decoded, payload = codec.decode(blob)

    assert payload == PAYLOAD
    assert decoded.checksum == hashlib.sha256(PAYLOAD).hexdigest()
    assert decoded == replace(meta, checksum=decoded.checksum)
    assert decoded.offsets == {0: 10, 3: 77}
    assert all(isinstance(p, int) for p in decoded.offsets)
    assert blob.startswith(MAGIC + bytes((ENVELOPE_VERSION,)))


def test_empty_payload_round_trips() -> None:
    codec = SnapshotCodec([KEY])
    meta, payload = codec.decode(codec.encode(make_meta(), b""))
    assert payload == b""
    assert meta.checksum == hashlib.sha256(b"").hexdigest()


def test_every_flipped_bit_after_the_prefix_fails_the_signature() -> None:
    codec = SnapshotCodec([KEY])
    blob = codec.encode(make_meta(), b"payload-bytes")
    for position in range(PREFIX_LEN, len(blob)):
        tampered = bytearray(blob)
        tampered[position] ^= 1 << (position % 8)
        with pytest.raises(SignatureError):
            codec.decode(bytes(tampered))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_random_bit_flip_is_always_rejected(data: st.DataObject) -> None:
    codec = SnapshotCodec([KEY])
    blob = codec.encode(make_meta(), PAYLOAD)
    position = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    tampered = bytearray(blob)
    tampered[position] ^= 1 << bit
    expected = SignatureError if position >= PREFIX_LEN else SnapshotFormatError
    with pytest.raises(expected):
        codec.decode(bytes(tampered))


def test_flipped_bit_in_signature_header_and_payload_regions() -> None:
    codec = SnapshotCodec([KEY])
    blob = codec.encode(make_meta(), PAYLOAD)
    header_len = struct.unpack_from(">I", blob, BODY_START)[0]
    regions = {
        "signature": PREFIX_LEN + 5,
        "header": BODY_START + 4 + header_len // 2,
        "payload": len(blob) - 10,
    }
    for position in regions.values():
        tampered = bytearray(blob)
        tampered[position] ^= 0x80
        with pytest.raises(SignatureError):
            codec.decode(bytes(tampered))


def test_wrong_key_is_a_signature_error() -> None:
    blob = SnapshotCodec([OTHER_KEY]).encode(make_meta(), PAYLOAD)
    with pytest.raises(SignatureError):
        SnapshotCodec([KEY]).decode(blob)


def test_key_rotation_verifies_with_any_key_and_signs_with_the_first() -> None:
    old_blob = SnapshotCodec([OLD_KEY]).encode(make_meta(), PAYLOAD)
    rotated = SnapshotCodec([KEY, OLD_KEY])

    assert rotated.decode(old_blob)[1] == PAYLOAD

    new_blob = rotated.encode(make_meta(version=4), PAYLOAD)
    assert SnapshotCodec([KEY]).decode(new_blob)[0].version == 4
    with pytest.raises(SignatureError):
        SnapshotCodec([OLD_KEY]).decode(new_blob)


def test_truncated_blobs_are_rejected() -> None:
    codec = SnapshotCodec([KEY])
    blob = codec.encode(make_meta(), PAYLOAD)
    for length in range(len(blob)):
        with pytest.raises(SnapshotError) as info:
            codec.decode(blob[:length])
        if length < BODY_START + 4:
            assert isinstance(info.value, SnapshotFormatError)
        else:
            assert isinstance(info.value, SignatureError)


def test_appended_bytes_fail_the_signature() -> None:
    codec = SnapshotCodec([KEY])
    blob = codec.encode(make_meta(), PAYLOAD)
    with pytest.raises(SignatureError):
        codec.decode(blob + b"\x00")


def test_bad_magic_and_unknown_envelope_version_are_format_errors() -> None:
    codec = SnapshotCodec([KEY])
    blob = codec.encode(make_meta(), PAYLOAD)
    with pytest.raises(SnapshotFormatError, match="magic"):
        codec.decode(b"XXXXX" + blob[5:])
    with pytest.raises(SnapshotFormatError, match="version"):
        codec.decode(MAGIC + bytes((ENVELOPE_VERSION + 1,)) + blob[PREFIX_LEN:])
    with pytest.raises(SnapshotFormatError):
        codec.decode(pickle.dumps({"a": 1}))


def test_signature_is_checked_before_the_header_is_parsed() -> None:
    # Garbage header signed with a foreign key: must be a signature error, not a parse error.
    blob = sign_raw(OTHER_KEY, b"{not json", b"")
    with pytest.raises(SignatureError):
        SnapshotCodec([KEY]).decode(blob)


def test_checksum_mismatch_under_a_valid_signature_is_a_format_error() -> None:
    meta = replace(make_meta(), checksum=hashlib.sha256(b"other").hexdigest())
    blob = sign_raw(KEY, meta.to_json().encode(), b"payload")
    with pytest.raises(SnapshotFormatError, match="checksum"):
        SnapshotCodec([KEY]).decode(blob)


def test_header_length_beyond_the_blob_is_a_format_error() -> None:
    body = struct.pack(">I", 10_000) + b"{}"
    mac = hmac.new(KEY, body, hashlib.sha256).digest()
    blob = MAGIC + bytes((ENVELOPE_VERSION,)) + mac + body
    with pytest.raises(SnapshotFormatError, match="header length"):
        SnapshotCodec([KEY]).decode(blob)


def test_malformed_header_under_a_valid_signature_is_a_format_error() -> None:
    with pytest.raises(SnapshotFormatError):
        SnapshotCodec([KEY]).decode(sign_raw(KEY, b"[1, 2]", b""))
    with pytest.raises(SnapshotFormatError):
        SnapshotCodec([KEY]).decode(sign_raw(KEY, b"\xff\xfe", b""))


def test_decode_never_unpickles_the_payload(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (builtins.open, (str(marker), "w"))

    payload = pickle.dumps(Exploit())
    codec = SnapshotCodec([KEY])

    meta, decoded = codec.decode(codec.encode(make_meta(), payload))

    assert decoded == payload
    assert meta.version == 3
    assert not marker.exists()


@pytest.mark.parametrize(
    "keys",
    [[], [b""], [b"short"], ["a-str-key-that-is-long-enough"], b"k" * 32],
)
def test_codec_rejects_missing_or_weak_keys(keys: object) -> None:
    with pytest.raises(SnapshotError):
        SnapshotCodec(keys)  # type: ignore[arg-type]


def test_snapshot_errors_share_the_root() -> None:
    assert issubclass(SignatureError, SnapshotError)
    assert issubclass(SnapshotFormatError, SnapshotError)
    assert issubclass(SnapshotError, StreamserveError)


def test_meta_json_round_trip_and_compact_sorted_output() -> None:
    meta = make_meta(checksum="a" * 64)
    text = meta.to_json()
    assert SnapshotMeta.from_json(text) == meta
    assert SnapshotMeta.from_json(text.encode()) == meta
    doc = json.loads(text)
    assert list(doc) == sorted(doc)
    assert doc["offsets"] == {"0": 10, "3": 77}
    assert " " not in text.replace("river.linear_model", "")


def test_meta_normalises_integer_numbers() -> None:
    meta = make_meta(created_at=1700000000, metrics={"n": 1})
    assert isinstance(meta.created_at, float)
    assert meta.metrics == {"n": 1.0}
    assert SnapshotMeta.from_json(meta.to_json()) == meta


@pytest.mark.parametrize(
    "overrides",
    [
        {"version": 0},
        {"version": True},
        {"version": "3"},
        {"parent": 0},
        {"model": ""},
        {"examples_seen": -1},
        {"offsets": {"0": 1}},
        {"offsets": {0: -1}},
        {"metrics": {"a": "x"}},
        {"format": ""},
        {"checksum": "xyz"},
        {"created_at": float("nan")},
        {"extra": {1: "a"}},
    ],
)
def test_meta_rejects_invalid_fields(overrides: dict[str, object]) -> None:
    with pytest.raises(SnapshotError):
        make_meta(**overrides)


def test_meta_with_unserialisable_extra_cannot_be_encoded() -> None:
    meta = make_meta(extra={"obj": object()})
    with pytest.raises(SnapshotError, match="JSON"):
        SnapshotCodec([KEY]).encode(meta, b"")


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        "{}",
        json.dumps({**json.loads(make_meta().to_json()), "surprise": 1}),
        json.dumps({**json.loads(make_meta().to_json()), "version": -5}),
        json.dumps({**json.loads(make_meta().to_json()), "offsets": {"x": 1}}),
        json.dumps({**json.loads(make_meta().to_json()), "offsets": [1]}),
    ],
)
def test_from_json_rejects_malformed_metadata(text: str) -> None:
    with pytest.raises(SnapshotFormatError):
        SnapshotMeta.from_json(text)


def test_peek_meta_reads_the_header_without_a_key() -> None:
    blob = SnapshotCodec([KEY]).encode(make_meta(version=9), PAYLOAD)
    meta = peek_meta(blob)
    assert meta.version == 9
    assert meta.checksum == hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(SnapshotFormatError):
        peek_meta(b"garbage")
