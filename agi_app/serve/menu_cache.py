"""The last valid menu version this host served, kept on local disk so that `hotline serve` can
start — and answer callers with the menus they had — while PostgreSQL is down.

Written after every successful load from the database (start, hot reload) as
`<state_dir>/menus/active.json`: atomically (temp file, fsync, rename), 0600 in a 0700 folder,
because the document decides where calls are transferred. Read back only when the database cannot
be reached at start, and then trusted no more than a published version: the checksum must match,
the file must be ours and writable by no one else, and this server's own validation must accept it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agi_app.db.repositories.menus import checksum
from agi_app.flows.loader import FlowFileError, load_document
from agi_app.flows.model import FlowSet
from agi_app.logs import log_event

log = logging.getLogger("hotline.menu_cache")

FOLDER_MODE, FILE_MODE = 0o700, 0o600


class MenuCacheError(Exception):
    """No usable cached version: the message says where it was looked for and what is wrong."""


class MenuCache:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "menus" / "active.json"

    async def save(self, version: int, document: dict[str, Any]) -> bool:
        """Keep `version` as the one to start from during an outage; False (logged) if the disk
        refused — serving goes on either way."""
        try:
            await asyncio.to_thread(self._write, version, document)
        except OSError as exc:
            log_event(log, "menu_cache_write_failed", level=logging.WARNING, path=self.path, version=version,
                      error=exc.strerror or type(exc).__name__)
            return False
        log_event(log, "menu_cache_saved", version=version)
        return True

    async def load(self, *, services: Collection[str]) -> FlowSet:
        """The cached version, validated by this server's code; MenuCacheError if there is none
        or it cannot be trusted."""
        return await asyncio.to_thread(self._load, services)

    def _write(self, version: int, document: dict[str, Any]) -> None:
        folder = self.path.parent
        folder.mkdir(parents=True, mode=FOLDER_MODE, exist_ok=True)
        os.chmod(folder, FOLDER_MODE)  # also tightens a folder created by someone else's umask
        body = json.dumps({"version": version, "checksum": checksum(document),
                           "saved_at": datetime.now(UTC).isoformat(), "document": document},
                          ensure_ascii=False).encode("utf-8")
        tmp = folder / f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)

    def _load(self, services: Collection[str]) -> FlowSet:
        where = f"the cached menu version at {self.path}"
        try:
            self._check_private()
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise MenuCacheError(f"no cached menu version at {self.path} (one is written each time a"
                                 " server loads the published menus)") from None
        except OSError as exc:
            raise MenuCacheError(f"{where} is unreadable: {exc.strerror or exc}") from None
        try:
            data = json.loads(raw)
            version, document = int(data["version"]), data["document"]
            intact = isinstance(document, dict) and data["checksum"] == checksum(document)
        except (ValueError, TypeError, KeyError):
            intact = False
        if not intact:
            raise MenuCacheError(f"{where} is corrupt (not the JSON this server wrote, or its checksum"
                                 " does not match)")
        try:
            return load_document(document, file=f"cached menu version {version}", services=services,
                                 version=version)[0]
        except FlowFileError as exc:
            raise MenuCacheError(f"{where} is refused by this server's validation:\n{exc}") from exc

    def _check_private(self) -> None:
        """Refuse a file that someone else could have written: it decides where calls go."""
        for path in (self.path.parent, self.path):
            info = path.stat()
            if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise MenuCacheError(f"the cached menu version at {self.path} is writable by others"
                                     f" ({path}: owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o});"
                                     f" refusing to serve it")
