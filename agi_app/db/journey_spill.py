"""Journeys waiting on local disk while PostgreSQL cannot take them, for `journey_writer`.

Append-only JSON-lines files `<state_dir>/journeys/spill-<utc>-<pid>-<n>.jsonl`, one write
operation per line, in the order the calls made them; name order is write order, so the next
start replays leftovers in order. Why each rule:

- 0600 files in a 0700 folder: journeys hold caller numbers and customer ids (secure input
  arrives already masked, exactly as it is stored in the database).
- Datetimes are tagged (`{"t": iso}`), so every value reads back exactly as it was written.
- Every append is fsync'ed, and a failed one is cut back to the last whole line: a spilled
  journey survives a crash, and a later append never lands in the middle of a broken line.
- A writer holds an exclusive `flock` on each file it appends to or replays, so two servers
  sharing a state_dir never replay (and remove) a file the other is still writing.
- A truncated line is reported, not fatal: a crash mid-write loses that line only.
- A line the writer cannot apply (unreadable, or a name or arguments another release wrote) is
  set aside as it was in `rejected.jsonl`, same format and modes, never replayed automatically:
  a release that knows it applies it once the file is renamed `spill-<utc>-<pid>-<n>.jsonl`.

Every method but `new_path` touches the disk and blocks: the writer calls them from its one I/O
thread, in order, never on the event loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

FOLDER_MODE, FILE_MODE = 0o700, 0o600
REJECTED = "rejected.jsonl"


class SpillOp(NamedTuple):
    """One journey write: the writer's name for the statement, and its arguments (call id first)."""

    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Entry:
    """A line read back: its operation, or why there is none (`truncated`, `corrupt`)."""

    line: int  # 1-based
    end: int  # byte offset just past the line
    op: SpillOp | None
    problem: str | None = None
    raw: bytes = b""  # a corrupt line, as it was: to be set aside


def spill_dir_for(state_dir: str | Path) -> Path:
    """Where a server keeps the journeys it could not write yet."""
    return Path(state_dir) / "journeys"


def encode(op: SpillOp) -> bytes:
    args = [{"t": a.isoformat()} if isinstance(a, datetime) else a for a in op.args]
    return json.dumps({"op": op.name, "args": args}, ensure_ascii=True, allow_nan=False).encode("ascii") + b"\n"


def decode(line: bytes) -> SpillOp:
    """The operation on `line`; ValueError if it is not one this module wrote."""
    data = json.loads(line)
    if not isinstance(data, dict) or not isinstance(data.get("op"), str) or not isinstance(data.get("args"), list):
        raise ValueError("not a spilled operation")
    return SpillOp(data["op"], tuple(_value(a) for a in data["args"]))


def _value(raw: object) -> object:
    if isinstance(raw, dict):
        if set(raw) != {"t"} or not isinstance(raw["t"], str):
            raise ValueError("unknown tagged value")
        return datetime.fromisoformat(raw["t"])
    if raw is None or isinstance(raw, str | int | float):
        return raw
    raise ValueError("unexpected value")


class SpillStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._held: dict[Path, int] = {}  # files this process appends to or replays: fd holding the lock
        self._last_stamp = datetime.min.replace(tzinfo=UTC)
        self._count = 0

    def new_path(self) -> Path:
        """A name that sorts after every file this process named before (even if the clock steps back)."""
        self._last_stamp = max(datetime.now(UTC), self._last_stamp + timedelta(microseconds=1))
        self._count += 1
        return self.folder / f"spill-{self._last_stamp:%Y%m%dT%H%M%S%f}-{os.getpid()}-{self._count:04d}.jsonl"

    def claim_leftovers(self) -> tuple[list[Path], list[tuple[Path, str]]]:
        """Files left by earlier runs, oldest first, now locked by this process; and those refused
        (with why): held by a live writer, or not this user's own file writable by no one else."""
        self._ensure_folder()
        claimed: list[Path] = []
        refused: list[tuple[Path, str]] = []
        for path in sorted(self.folder.glob("spill-*.jsonl")):
            if path in self._held:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError as exc:  # a symlink, or gone meanwhile
                refused.append((path, type(exc).__name__))
                continue
            info = os.fstat(fd)
            reason = None
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
                reason = "not_ours"
            else:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    reason = "in_use"
            if reason:
                os.close(fd)
                refused.append((path, reason))
            else:
                self._held[path] = fd
                claimed.append(path)
        return claimed, refused

    def append(self, path: Path, ops: list[SpillOp]) -> None:
        """Add `ops` at the end of `path` (created on first use) and fsync; OSError if the disk refused."""
        data = b"".join(encode(op) for op in ops)
        fd = self._held.get(path)
        if fd is None:
            self._ensure_folder()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._held[path] = fd
            self._sync_folder()
        _append_whole(fd, data)

    def set_aside(self, line: bytes) -> Path:
        """Keep a whole `line` in the rejected file (fsync'ed) and say where; OSError if the disk refused."""
        self._ensure_folder()
        path = self.folder / REJECTED
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # also tightens a file someone copied in
            fcntl.flock(fd, fcntl.LOCK_EX)  # another server sharing the folder appends only briefly
            _append_whole(fd, line)
        finally:
            os.close(fd)
        self._sync_folder()
        return path

    def read(self, path: Path, offset: int, line: int, limit: int) -> list[Entry]:
        """Up to `limit` lines from byte `offset` (the `line`-th line ends there); [] at the end.

        Only for a file no one appends to any more: a last line without its newline is a crash's."""
        entries: list[Entry] = []
        try:
            with path.open("rb") as f:
                f.seek(offset)
                while len(entries) < limit and (raw := f.readline()):
                    offset += len(raw)
                    line += 1
                    if not raw.endswith(b"\n"):
                        entries.append(Entry(line, offset, None, "truncated"))
                        continue
                    try:
                        entries.append(Entry(line, offset, decode(raw)))
                    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
                        entries.append(Entry(line, offset, None, "corrupt", raw))
        except FileNotFoundError:
            return []
        return entries

    def remove(self, path: Path) -> None:
        """Delete a fully applied file and let go of its lock."""
        path.unlink(missing_ok=True)
        fd = self._held.pop(path, None)
        if fd is not None:
            os.close(fd)
        self._sync_folder()

    def close(self) -> None:
        """Release every lock; the files stay for the next start."""
        for fd in self._held.values():
            os.close(fd)
        self._held.clear()

    def _ensure_folder(self) -> None:
        self.folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        os.chmod(self.folder, FOLDER_MODE)  # also tightens a folder created under someone's umask

    def _sync_folder(self) -> None:
        """Make a file's creation or removal durable."""
        fd = os.open(self.folder, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _append_whole(fd: int, data: bytes) -> None:
    """Write `data` at the end of `fd` and fsync; on failure cut the file back to whole lines."""
    size = os.fstat(fd).st_size
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise
