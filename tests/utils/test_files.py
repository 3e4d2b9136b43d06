"""Atomic writes: a failed write leaves neither a partial file nor a temporary one."""

from __future__ import annotations

import pytest

from gen3d.utils.files import atomic_write


def test_atomic_write_bytes_and_stream(tmp_path):
    atomic_write(tmp_path / "a.bin", b"abc")
    atomic_write(tmp_path / "b.bin", lambda stream: stream.write(b"xyz"))
    assert (tmp_path / "a.bin").read_bytes() == b"abc" and (tmp_path / "b.bin").read_bytes() == b"xyz"


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_bytes(b"old")

    def broken(stream):
        stream.write(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
