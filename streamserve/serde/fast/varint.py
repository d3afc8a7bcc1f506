"""Avro's zigzag varints, written and read byte for byte as fastavro does."""

from __future__ import annotations


def zigzag(value: int) -> bytes:
    n = (value << 1) ^ (value >> 63)
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint at ``pos``: (value, position after it). IndexError when truncated."""
    n = 0
    shift = 0
    for b in data[pos : pos + 10]:
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return (n >> 1) ^ -(n & 1), pos + shift // 7
    raise IndexError("truncated or overlong varint")
