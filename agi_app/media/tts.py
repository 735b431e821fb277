"""Generated speech for dynamic text (a caller's name), cached so each text is synthesised once.

Recorded prompts cover everything fixed; only text known at call time (a customer's name, a notice
typed by an administrator) goes through here. A call must never stall on it, so synthesis runs in
asyncio subprocesses with a hard time budget, concurrent requests for the same text share one run,
and a semaphore keeps a burst of new callers from starting dozens of espeak processes at once.

Files are `<sounds_root>/<subdir>/<fingerprint>.wav`, played as `sound:<subdir>/<fingerprint>`; the
fingerprint (agi_app.media.voice) covers voice settings, language and text, so a settings change
never plays stale audio. Names are personal data: the text is never logged, never put on a command
line (it goes to espeak-ng's stdin) and never appears in an exception message; the hash identifies it.

Every failure — a tool, the budget, or the file system (unwritable sounds root, full disk) — is a
`SpeechError`, which the resolver turns into the prompt without the generated part. What callers hear
must not be replaceable by others on the host: the folder is 02750 (the app writes; the sounds root's
group — Asterisk's, in production — reads, and inherits it through the setgid bit; others nothing),
files 0640. A pre-existing folder others may write into is made private at first use, and files
others left there are deleted unplayed; if the app does not own it, speech is refused until fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat
import uuid
from pathlib import Path

from agi_app.logs import log_event
from agi_app.media.voice import (
    Voice,
    check_wav_format,
    espeak_command,
    fingerprint,
    normalise_text,
    sox_command,
    spoken_text,
    voice_for,
)

log = logging.getLogger(__name__)

_STDERR_LIMIT = 300
FOLDER_MODE = 0o2750
FILE_MODE = 0o640


class SpeechError(Exception):
    """Speech could not be produced in time (timeout, missing tool, bad output).

    The caller should fall back to a prompt without the generated part (e.g. greet without the name);
    it is never a reason to drop a call.
    """


class SpeechSynthesizer:
    """Text-to-speech with a file cache shared by all calls (and all processes using the same folder).

    One instance per server process. `speak` is safe to call from many call tasks at once.
    `syntheses` counts actual espeak runs (cache misses), for metrics and tests.
    """

    def __init__(
        self,
        sounds_root: Path,
        *,
        subdir: str = "hotline-tts",
        timeout: float = 5.0,
        max_concurrency: int = 2,
    ) -> None:
        if not subdir or subdir.startswith("/") or ".." in Path(subdir).parts:
            raise ValueError(f"subdir must be a relative folder name, got {subdir!r}")
        self._subdir = subdir.strip("/")
        self._directory = Path(sounds_root) / self._subdir
        self._timeout = timeout
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._folder_lock = asyncio.Lock()
        self._folder_ready = False
        self.syntheses = 0

    @property
    def directory(self) -> Path:
        """Folder holding the cached WAVs."""
        return self._directory

    def path_for(self, text: str, language: str) -> Path:
        """Where the WAV of `text` in `language` lives (whether or not it exists yet)."""
        voice = self._voice(language)
        return self._directory / f"{fingerprint(text, voice)}.wav"

    async def speak(self, text: str, language: str) -> str:
        """Return the ARI media URI (e.g. 'sound:hotline-tts/<hash>') of `text` spoken in `language`
        ('zh'|'en'), synthesising on first use.

        Raises `SpeechError` if the text is empty, the language unsupported, or synthesis fails or
        exceeds the time budget. Cancelling one caller's `speak` (the caller hung up) does not cancel
        a synthesis other callers are waiting for.
        """
        voice = self._voice(language)
        if not normalise_text(text):
            raise SpeechError("nothing to say: empty text")
        digest = fingerprint(text, voice)
        uri = f"sound:{self._subdir}/{digest}"
        target = self._directory / f"{digest}.wav"
        try:
            await self._ensure_folder()
            if _exists(target):  # a stat on a local disk: cheaper than a thread hop
                return uri
        except OSError as exc:
            raise _file_error(self._directory, exc) from None
        task = self._in_flight.get(digest)
        if task is None:
            task = asyncio.create_task(
                self._synthesise(text, voice, digest, target), name=f"tts-{digest[:12]}"
            )
            self._in_flight[digest] = task
            task.add_done_callback(lambda done: self._finished(digest, done))
        await asyncio.shield(task)
        return uri

    async def _ensure_folder(self) -> None:
        """Create or check the cache folder once per process (in a thread: it may clean up)."""
        if self._folder_ready:
            return
        async with self._folder_lock:
            if not self._folder_ready:
                await asyncio.to_thread(_secure_folder, self._directory)
                self._folder_ready = True

    def _voice(self, language: str) -> Voice:
        try:
            return voice_for(language)
        except KeyError as exc:
            raise SpeechError(str(exc.args[0])) from None

    def _finished(self, digest: str, task: asyncio.Task[None]) -> None:
        """Forget the in-flight task; retrieve its exception so an unawaited failure is not reported
        as 'never retrieved' when every waiter was cancelled."""
        self._in_flight.pop(digest, None)
        if not task.cancelled():
            task.exception()

    async def _synthesise(self, text: str, voice: Voice, digest: str, target: Path) -> None:
        """espeak-ng then sox into temp files beside the target, then an atomic rename.

        The budget covers waiting for a slot too: the caller waits at most `timeout` in total.
        """
        tag = f"{digest[:12]}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        raw = self._directory / f".{tag}.raw.wav"
        tmp = self._directory / f".{tag}.tmp.wav"
        try:
            async with asyncio.timeout(self._timeout):
                async with self._semaphore:
                    if _exists(target):  # another process finished it while we queued
                        return
                    self.syntheses += 1
                    await _run(espeak_command(voice, raw), stdin=spoken_text(text, voice).encode("utf-8"))
                    await _run(sox_command(raw, tmp))
                    try:
                        check_wav_format(tmp)
                    except (ValueError, EOFError, OSError) as exc:
                        raise SpeechError(f"bad output: {exc}") from None
                    os.chmod(tmp, FILE_MODE)
                    os.replace(tmp, target)
            log.info("tts synthesised %s (%s)", digest[:12], voice.language)
        except TimeoutError:  # failures are logged once, by whoever degrades the prompt (with the call)
            raise SpeechError(f"tts {digest[:12]}: synthesis exceeded {self._timeout:.1f}s") from None
        except OSError as exc:
            raise _file_error(self._directory, exc) from None
        finally:
            for leftover in (raw, tmp):
                with contextlib.suppress(OSError):
                    leftover.unlink()


def _exists(target: Path) -> bool:
    """A cached WAV is there. Local-disk metadata calls take microseconds, so they run inline rather
    than paying for a thread hop; a folder where a file belongs is not one (and fails later)."""
    return target.is_file()


def _file_error(folder: Path, exc: OSError) -> SpeechError:
    """The file system refused (unwritable, full, not a folder): the path holds hashes only."""
    return SpeechError(f"speech cache {folder}: {exc.strerror or type(exc).__name__}")


def _secure_folder(folder: Path) -> None:
    """Create the cache folder private to the app, or make a pre-existing one so.

    Raises OSError if the folder cannot be created, SpeechError if others may write into it and it
    is not ours to fix (anyone could replace what callers hear)."""
    try:
        info = folder.stat()
    except FileNotFoundError:
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # another process created it meanwhile: check theirs
            info = folder.stat()
        else:
            _make_private(folder)
            return
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder))
    mode = stat.S_IMODE(info.st_mode)
    if not mode & (stat.S_IWGRP | stat.S_IRWXO):
        return
    if info.st_uid != os.geteuid():
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise SpeechError(f"speech cache {folder}: writable by others (mode {mode:o}) and not the app's to"
                              f" fix: chown it to the app's user, chmod {FOLDER_MODE:o}")
        return  # only readable by others, and not ours: the owner decides
    _make_private(folder)
    removed = 0
    for entry in os.scandir(folder):  # what others could put there is deleted, never played
        if entry.is_symlink() or entry.stat(follow_symlinks=False).st_uid != os.geteuid():
            os.unlink(entry.path)
            removed += 1
        elif entry.is_file(follow_symlinks=False):
            os.chmod(entry.path, FILE_MODE)
    log_event(log, "speech_folder_fixed", level=logging.WARNING, path=folder, was=f"{mode:o}",
              now=f"{FOLDER_MODE:o}", removed=removed)


def _make_private(folder: Path) -> None:
    """02750 with the sounds root's group, so Asterisk (in that group) can read what the app writes."""
    group = folder.parent.stat().st_gid
    if folder.stat().st_gid != group:
        try:
            os.chown(folder, -1, group)
        except PermissionError:
            log_event(log, "speech_folder_group_unset", level=logging.WARNING, path=folder, group=group)
    os.chmod(folder, FOLDER_MODE)


async def _run(argv: list[str], *, stdin: bytes | None = None) -> None:
    """Run one tool to completion; kill it if we are cancelled or time out (no orphan processes).

    Raises SpeechError on a missing tool or a non-zero exit. Its message carries the tool's stderr,
    which for espeak-ng/sox holds file names (hashes) and settings, never the spoken text.
    """
    tool = Path(argv[0]).name
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise SpeechError(f"cannot start {tool}: {exc.strerror}") from None
    try:
        _, stderr = await process.communicate(stdin)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            # Reap it so no zombie is left; shielded so a second cancellation cannot skip this.
            await asyncio.shield(process.wait())
    if process.returncode != 0:
        detail = stderr.decode("utf-8", "replace").strip()[-_STDERR_LIMIT:]
        raise SpeechError(f"{tool} exited with {process.returncode}: {detail}")
