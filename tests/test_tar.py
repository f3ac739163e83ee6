"""The shard tar writer writes exactly what tarfile writes for the same members."""

from __future__ import annotations

import io
import tarfile

import pytest

from manifests.tar import BLOCK, TarWriter, ustar_header

# Sizes around block and record boundaries; names up to the 100-byte field, non-ASCII included.
MEMBERS = [("a.png", 0), ("music_0000000001.png", 1), ("x" * 100, 511), ("ünï_0000000002.json", 512),
           ("tables_0000000003.0.png", 513), ("b.json", 10240 - 3 * BLOCK), ("c.webp", 70001)]


def _tarfile_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("count", [0, 1, 2, len(MEMBERS)])
def test_bytes_equal_tarfile(count: int) -> None:
    members = [(name, bytes(range(256)) * (size // 256) + b"z" * (size % 256)) for name, size in MEMBERS[:count]]
    buffer = io.BytesIO()
    writer = TarWriter(buffer)
    offsets = [writer.add(name, data) for name, data in members]
    writer.close()
    assert buffer.getvalue() == _tarfile_bytes(members)
    assert writer.offset == len(buffer.getvalue())
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as tar:
        assert [(m.name, m.offset_data) for m in tar.getmembers()] == [(n, o) for (n, _), o in zip(members, offsets, strict=True)]
        for name, data in members:
            assert tar.extractfile(name).read() == data


def test_refuses_what_the_header_cannot_hold() -> None:
    with pytest.raises(ValueError, match="longer than 100 bytes"):
        ustar_header("y" * 101, 1)
    with pytest.raises(ValueError, match="too large"):
        ustar_header("big", 8**11)
