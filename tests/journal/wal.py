"""Reading a journal's WAL file as SQLite wrote it: how many frames and transactions its current generation holds."""
from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

_WAL_HEADER = 32
_FRAME_HEADER = 24


def _frame_headers(journal: Path) -> Iterator[bytes]:
    # Frames of an older WAL generation (the WAL started over over them) carry other salts.
    wal = journal.with_name(journal.name + "-wal")
    if not wal.exists():
        return
    with wal.open("rb") as file:
        header = file.read(_WAL_HEADER)
        if len(header) < _WAL_HEADER:
            return
        page_size = struct.unpack(">I", header[8:12])[0]
        salts = header[16:24]
        size = wal.stat().st_size
        offset = _WAL_HEADER
        while offset + _FRAME_HEADER + page_size <= size:
            file.seek(offset)
            frame = file.read(_FRAME_HEADER)
            if frame[8:16] != salts:
                return
            yield frame
            offset += _FRAME_HEADER + page_size


def wal_frames(journal: Path) -> int:
    """Frames (pages) in the journal's current WAL: what a checkpoint has yet to copy, or has copied since the WAL started over."""
    return sum(1 for _ in _frame_headers(journal))


def wal_commits(journal: Path) -> int:
    """Commit frames in the journal's current WAL (frames of an older WAL generation, with other salts, not counted)."""
    # The database size after the commit: set on a commit's last frame only.
    return sum(1 for frame in _frame_headers(journal) if struct.unpack(">I", frame[4:8])[0] != 0)
