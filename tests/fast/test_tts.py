"""Generated speech and the committed prompt WAVs, with the real espeak-ng and sox.

Real tools rather than mocks: the properties that matter (8 kHz mono 16-bit output, one synthesis
per text, no partial file after a timeout) are properties of the subprocess pipeline itself.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import wave
from pathlib import Path

import pytest

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
    await asyncio.sleep(0)
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
    await asyncio.sleep(0.05)  # let a killed process's pipes close
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
