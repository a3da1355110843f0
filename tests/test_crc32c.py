"""The CRC-32C the catalog's chunks and voxel checksums use (the ``crc32c`` package) is the
standard Castagnoli CRC, bit for bit: checked against the published check values and an
independent table-driven implementation on random bytes."""

from __future__ import annotations

import random

import crc32c
import numpy as np
import pytest

from mamamia_ingest._features import voxel_checksum


def _table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _table()


def reference_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0x00000000),
        (b"123456789", 0xE3069283),  # the standard check value
        (bytes(32), 0x8A9136AA),  # RFC 3720, B.4: 32 bytes of zeros
        (b"\xff" * 32, 0x62A8AB43),  # RFC 3720, B.4: 32 bytes of ones
        (bytes(range(32)), 0x46DD794E),  # RFC 3720, B.4: incrementing bytes
    ],
)
def test_known_vectors(data: bytes, expected: int) -> None:
    assert crc32c.crc32c(data) == expected
    assert reference_crc32c(data) == expected


def test_random_bytes_match_the_reference() -> None:
    rng = random.Random(7)
    for size in (1, 3, 4, 7, 64, 1000, 4099):
        data = rng.randbytes(size)
        assert crc32c.crc32c(data) == reference_crc32c(data), size


def test_a_chunk_with_its_trailer_checks_to_the_residue() -> None:
    # The chunk reader checks body + little-endian CRC against this constant.
    rng = random.Random(8)
    for size in (0, 5, 777):
        body = rng.randbytes(size)
        trailer = crc32c.crc32c(body).to_bytes(4, "little")
        assert crc32c.crc32c(body + trailer) == 0x48674BC7
        damaged = bytes([body[0] ^ 1]) + body[1:] if body else b"\x01"
        assert crc32c.crc32c(damaged + trailer) != 0x48674BC7


def test_voxel_checksum_in_blocks_equals_one_pass() -> None:
    # Larger than one 4 MiB block, with a tail: the blockwise CRC must equal the reference.
    a = np.random.default_rng(3).integers(-1000, 1000, size=(2_100_003,), dtype=np.int16)
    raw = a.tobytes()
    expected = f"{crc32c.crc32c(raw):08x}"
    assert voxel_checksum(a).split(":")[1][:8] == expected
