"""One owner per journal: an exclusive OS lock on a file beside it, held for the owning process's life."""
from __future__ import annotations

import errno
import fcntl
import os
import weakref
from pathlib import Path
from types import TracebackType
from typing import Self

from bot.errors import BotError

LOCK_SUFFIX = ".lock"
# A pid is a few digits; anything longer in the lock file is not ours to echo.
_PID_BYTES = 32


class JournalInUse(BotError):
    """Another process owns the journal."""


class JournalLockError(BotError):
    """The journal's lock file cannot be created or locked."""


def lock_path_of(journal: Path) -> Path:
    """Where the lock file of `journal` lives (beside it, never moved or deleted)."""
    return journal.with_name(journal.name + LOCK_SUFFIX)


class JournalLock:
    """An exclusive flock on `<journal>.lock`; the kernel releases it when the process dies, even by kill -9.

    The file holds the owner's pid, for the error a second process prints. It is never deleted:
    unlinking a lock file another process is about to lock would let two owners hold "the" lock
    on two different inodes.
    """

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.path = lock_path_of(journal)
        self._fd: int | None = None
        self._finalizer: weakref.finalize[[int], JournalLock] | None = None

    def acquire(self) -> None:
        """Take the lock or raise JournalInUse naming the owner's pid; call before the journal is opened."""
        previous = os.umask(0o077)  # a run folder created here is the user's alone (0700)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_CLOEXEC (Python's default): a child process never inherits the lock.
            # O_NOFOLLOW: a symlink planted as the lock file must not get its target truncated.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise JournalLockError(f"journal {self.journal}: cannot create its lock file {self.path}: {exc.strerror}") from None
        finally:
            os.umask(previous)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f"pid {owner}" if owner is not None else "pid unknown"
                raise JournalInUse(f"journal {self.journal} is in use by another bot process ({who})") from None
            raise JournalLockError(f"journal {self.journal}: cannot lock {self.path}: {exc.strerror}") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid is only for the message of a second process: the lock is what counts
        self._fd = fd
        # A lock object dropped without release still lets the lock go when it is freed.
        self._finalizer = weakref.finalize(self, os.close, fd)

    def release(self) -> None:
        """Let the lock go (the file stays)."""
        if self._fd is not None:
            assert self._finalizer is not None
            self._finalizer()  # closes the descriptor, which releases the flock
            self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, _PID_BYTES, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None
