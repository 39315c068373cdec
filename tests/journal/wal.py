"""Reading a journal's WAL file as SQLite wrote it: how many transactions were committed to it."""
from __future__ import annotations

import struct
from pathlib import Path

_WAL_HEADER = 32
_FRAME_HEADER = 24


def wal_commits(journal: Path) -> int:
    """Commit frames in the journal's current WAL (frames of an older WAL generation, with other salts, not counted)."""
    wal = journal.with_name(journal.name + "-wal")
    if not wal.exists():
        return 0
    data = wal.read_bytes()
    if len(data) < _WAL_HEADER:
        return 0
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    commits = 0
    offset = _WAL_HEADER
    while offset + _FRAME_HEADER + page_size <= len(data):
        header = data[offset : offset + _FRAME_HEADER]
        if header[8:16] != salts:
            break
        if struct.unpack(">I", header[4:8])[0] != 0:  # the database size after the commit: set on a commit's last frame only
            commits += 1
        offset += _FRAME_HEADER + page_size
    return commits
