"""A zip whose deflate stream zlib itself rejects (a CRC mismatch is the other, milder kind)."""

from __future__ import annotations

import io
import zipfile
import zlib


def corrupt_deflate(zipped: bytes) -> bytes:
    """`zipped` with one byte of its deflate stream flipped so that zlib itself fails
    (not the CRC check): the kind of corruption that used to escape as zlib.error."""
    for at in range(40, len(zipped)):
        damaged = bytearray(zipped)
        damaged[at] ^= 0xFF
        try:
            with zipfile.ZipFile(io.BytesIO(bytes(damaged))) as archive:
                for info in archive.infolist():
                    archive.read(info)
        except zlib.error:
            return bytes(damaged)
        except Exception:
            continue
    raise AssertionError("no single-byte flip gives a zlib error")
