"""Generated speech and the committed prompt WAVs, with the real espeak-ng and sox.

Real tools rather than mocks: the properties that matter (8 kHz mono 16-bit output, one synthesis
per text, no partial file after a timeout) are properties of the subprocess pipeline itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import wave
from pathlib import Path

import pytest

from agi_app.flows.loader import load_document
from agi_app.media.tts import SpeechError, SpeechSynthesizer
from agi_app.media.voice import (
    LANGUAGES,
    PromptFileError,
    fingerprint,
    load_prompt_styles,
    load_prompt_texts,
    voice_for,
    wav_duration,
)
from tests.fake_ari.server import FakeAri
from tests.fast.conftest import running_hotline, settings_for
from tests.fast.flowkit import doc

REPO = Path(__file__).resolve().parents[2]
SOUNDS = REPO / "sounds"
PROMPTS = SOUNDS / "prompts.yaml"

needs_tools = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None, reason="espeak-ng and sox required"
)


def wav_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wav")) if directory.exists() else []


def all_files(directory: Path) -> list[Path]:
    """Everything in the cache folder, dot-files (temp files) included."""
    return sorted(directory.iterdir()) if directory.exists() else []


def assert_asterisk_wav(path: Path) -> None:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getnframes() > 0
    assert wav_duration(path) > 0


@needs_tools
async def test_same_text_twice_is_synthesised_once(tmp_path: Path) -> None:
    tts = SpeechSynthesizer(tmp_path)
    first = await tts.speak("王小明", "zh")
    path = tts.path_for("王小明", "zh")
    mtime = path.stat().st_mtime_ns
    second = await tts.speak("王小明", "zh")

    assert first == second == f"sound:hotline-tts/{path.stem}"
    assert wav_files(tmp_path / "hotline-tts") == [path]
    assert path.stat().st_mtime_ns == mtime
    assert tts.syntheses == 1
    assert_asterisk_wav(path)


@needs_tools
async def test_concurrent_requests_share_one_synthesis(tmp_path: Path) -> None:
    tts = SpeechSynthesizer(tmp_path, max_concurrency=4)
    uris = await asyncio.gather(*(tts.speak("Alice Smith", "en") for _ in range(5)))

    assert len(set(uris)) == 1
    assert tts.syntheses == 1
    assert len(wav_files(tmp_path / "hotline-tts")) == 1


@needs_tools
async def test_cancelled_waiter_does_not_cancel_shared_synthesis(tmp_path: Path) -> None:
    tts = SpeechSynthesizer(tmp_path)
    hung_up = asyncio.create_task(tts.speak("Bob Jones", "en"))
    staying = asyncio.create_task(tts.speak("Bob Jones", "en"))
    await asyncio.sleep(0)  # both requests are under way
    hung_up.cancel()

    assert await staying == f"sound:hotline-tts/{tts.path_for('Bob Jones', 'en').stem}"
    assert tts.syntheses == 1


@needs_tools
async def test_language_is_part_of_the_cache_key(tmp_path: Path) -> None:
    tts = SpeechSynthesizer(tmp_path)
    zh = await tts.speak("Lin", "zh")
    en = await tts.speak("Lin", "en")

    assert zh != en
    assert tts.syntheses == 2
    assert len(wav_files(tmp_path / "hotline-tts")) == 2


@needs_tools
async def test_whitespace_variants_share_a_file(tmp_path: Path) -> None:
    tts = SpeechSynthesizer(tmp_path)
    assert await tts.speak("Mary  Ann ", "en") == await tts.speak("Mary Ann", "en")
    assert tts.syntheses == 1


@needs_tools
async def test_timeout_raises_and_leaves_no_partial_file(tmp_path: Path) -> None:
    tts = SpeechSynthesizer(tmp_path, timeout=0.001)
    with pytest.raises(SpeechError):
        await tts.speak("一段很长的文字，" * 40, "zh")
    assert all_files(tmp_path / "hotline-tts") == []

    # A later request with a sane budget is not poisoned by the failed one.
    tts_ok = SpeechSynthesizer(tmp_path)
    await tts_ok.speak("一段很长的文字，" * 40, "zh")
    assert len(all_files(tmp_path / "hotline-tts")) == 1


async def test_bad_input_raises_speech_error(tmp_path: Path) -> None:
    tts = SpeechSynthesizer(tmp_path)
    with pytest.raises(SpeechError):
        await tts.speak("Bonjour", "fr")
    with pytest.raises(SpeechError):
        await tts.speak("   ", "en")


async def test_text_is_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="agi_app.media.tts")
    tts = SpeechSynthesizer(tmp_path, timeout=0.001)
    with pytest.raises(SpeechError) as raised:
        await tts.speak("Secretname Person", "en")
    assert "Secretname" not in caplog.text
    assert "Secretname" not in str(raised.value)


def test_fingerprint_tracks_text_language_and_settings() -> None:
    en, zh = voice_for("en"), voice_for("zh")
    assert fingerprint("a", en) != fingerprint("b", en)
    assert fingerprint("a", en) != fingerprint("a", zh)
    assert fingerprint("a", en) != fingerprint("a", en.styled("slow"))
    assert fingerprint("a  b", en) == fingerprint("a b", en)


def test_prompt_file_requires_both_languages(tmp_path: Path) -> None:
    bad = tmp_path / "prompts.yaml"
    bad.write_text("prompts:\n  welcome:\n    en: Hello\n", encoding="utf-8")
    with pytest.raises(PromptFileError, match="zh"):
        load_prompt_texts(bad)


# --- the committed recorded prompts -------------------------------------------------------------


def test_every_prompt_has_a_wav_in_each_language_or_is_declared_silent() -> None:
    texts = load_prompt_texts(PROMPTS)
    required = {"welcome", "menu_main", "digits/0", "digits/9", "date/day_31", "date/month_12", "yuan"}
    assert required <= set(texts)
    missing = []
    for pid, by_lang in texts.items():
        for lang in LANGUAGES:
            path = SOUNDS / lang / f"{pid}.wav"
            if by_lang[lang] is None:
                assert not path.exists(), f"{path} exists but {pid} is declared silent in {lang}"
            elif not path.exists():
                missing.append(f"{lang}/{pid}")
            else:
                assert_asterisk_wav(path)
    assert not missing, f"run scripts/make-sounds; missing: {missing}"


def test_committed_prompts_match_their_text() -> None:
    """A text edited without re-running scripts/make-sounds would play the old recording."""
    stamp = json.loads((SOUNDS / ".render-stamp.json").read_text())
    texts, styles = load_prompt_texts(PROMPTS), load_prompt_styles(PROMPTS)
    expected = {
        f"{lang}/{pid}": fingerprint(text, voice_for(lang).styled(styles[pid]))
        for pid, by_lang in texts.items()
        for lang, text in by_lang.items()
        if text is not None
    }
    stale = sorted(key for key in expected if stamp.get(key) != expected[key])
    assert not stale, f"run scripts/make-sounds; stale: {stale}"


def test_elderly_menu_is_slower_than_the_main_menu_per_character() -> None:
    texts = load_prompt_texts(PROMPTS)

    def seconds_per_char(pid: str) -> float:
        return wav_duration(SOUNDS / "zh" / f"{pid}.wav") / len(texts[pid]["zh"] or "")

    assert seconds_per_char("menu_elderly") > seconds_per_char("menu_main")


# --- a speech cache that cannot be written, and who may write it --------------------------------


def under_a_file(tmp_path: Path) -> Path:
    """A sounds root no folder can be created in (ENOTDIR): how an unwritable root or a full disk
    looks to the app, even when the tests run as root."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    return blocker / "sounds"


async def test_an_unwritable_speech_cache_raises_speech_error_not_oserror(tmp_path: Path) -> None:
    with pytest.raises(SpeechError, match="speech cache"):
        await SpeechSynthesizer(under_a_file(tmp_path)).speak("Alice Smith", "en")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "hotline-tts").write_text("", encoding="utf-8")  # the folder's place is taken
    with pytest.raises(SpeechError, match="speech cache"):
        await SpeechSynthesizer(tmp_path / "root").speak("Alice Smith", "en")


@needs_tools
async def test_the_speech_folder_is_writable_by_the_app_only(tmp_path: Path) -> None:
    tts = SpeechSynthesizer(tmp_path)
    await tts.speak("Carol King", "en")
    folder = tmp_path / "hotline-tts"
    mode = stat.S_IMODE(folder.stat().st_mode)
    assert mode & 0o777 == 0o750, oct(mode)
    assert mode & stat.S_ISGID, "files inherit the sounds root's group (Asterisk reads them)"
    root_group = os.stat(tmp_path).st_gid
    assert folder.stat().st_gid == root_group
    wav = tts.path_for("Carol King", "en")
    assert stat.S_IMODE(wav.stat().st_mode) == 0o640
    assert wav.stat().st_gid == root_group


@needs_tools
@pytest.mark.skipif(os.geteuid() != 0, reason="planting a file owned by someone else needs root")
async def test_a_world_writable_speech_folder_is_made_private_and_what_others_left_there_is_not_played(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    folder = tmp_path / "hotline-tts"
    folder.mkdir()
    folder.chmod(0o777)  # as the sandbox used to create it
    tts = SpeechSynthesizer(tmp_path)
    planted = tts.path_for("Dave Lee", "en")
    planted.write_bytes(b"what an intruder wants callers to hear")
    os.chown(planted, 4242, 4242)

    await tts.speak("Dave Lee", "en")

    assert stat.S_IMODE(folder.stat().st_mode) & 0o777 == 0o750
    assert planted.stat().st_uid == os.geteuid() and tts.syntheses == 1
    assert_asterisk_wav(planted)
    assert "event=speech_folder_fixed" in caplog.text


async def test_a_speech_failure_on_a_call_plays_the_recorded_prompt_and_the_call_stays_in_the_menu(
        fake_ari: FakeAri, dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    fake_ari.media_duration = lambda uri: 0.05
    flows = load_document(doc({
        "menu": {"type": "menu", "prompt": "Hello Secretname {{ sound('menu_main') }}", "timeout": 5,
                 "options": {"1": {"next": "bye"}}},
        "bye": {"type": "hangup", "prompt": "{{ sound('goodbye') }}"},
    }))[0]
    settings = settings_for(fake_ari, dsn, tmp_path, sounds_root=str(under_a_file(tmp_path)))
    async with running_hotline(fake_ari, dsn, settings, flows) as line:
        call = await line.call("13111111111")
        await line.heard(call, "sound:hotline/en/menu_main")
        await fake_ari.press(call, "1")
        row = await line.wait_ended(call)
    assert line.played(call) == ["sound:hotline/en/menu_main", "sound:hotline/en/goodbye"]
    assert fake_ari.channel(call).continued_to is None, "not sent to the dialplan fallback"
    assert row["path"] == ["menu", "bye"]
    failures = [r.getMessage() for r in caplog.records if "event=speech_failed" in r.getMessage()]
    assert len(failures) == 1 and f"call={call}" in failures[0]
    assert "Secretname" not in caplog.text
