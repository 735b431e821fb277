"""The one place that says how the hotline's voice sounds and how a WAV is made.

Both the recorded-prompt renderer (`scripts/make-sounds`) and the run-time synthesiser
(`agi_app.media.tts`) build their espeak-ng and sox command lines here, so a caller never hears a
generated name in a different voice, speed or loudness from the prompt around it, and a change of
settings is noticed by both (the settings are part of every prompt's fingerprint).

Why `cmn-latn-pinyin` and not `cmn`: on Debian bookworm's espeak-ng 1.51 the `cmn` voice lacks the
extended Mandarin dictionary and reads most characters' pinyin through its English rules ("一" comes
out as "yi one", "号" as "h-a-o four"; espeak-ng issues #1028/#1044). `cmn-latn-pinyin` is the same
Mandarin voice with Latin text read as pinyin, which pronounces characters correctly and also lets
`ZH_PRONUNCIATION_FIXES` spell the few polyphones espeak gets wrong (银行 as "yin xing") in pinyin.
The price: Latin letters in Mandarin text are read as pinyin, so Mandarin prompts avoid them.
"""

from __future__ import annotations

import hashlib
import json
import re
import wave
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

#: Bump when the render pipeline changes in a way the settings below do not capture (e.g. a new sox
#: effect); every prompt's fingerprint changes and everything is re-rendered once.
PIPELINE_VERSION = 1

#: Output format Asterisk plays natively without transcoding on an 8 kHz (G.711) call.
SAMPLE_RATE = 8000
CHANNELS = 1
SAMPLE_WIDTH_BYTES = 2  # 16-bit signed

#: Leading/trailing silence below this level is trimmed, then a fixed pad is added, so composed
#: prompts ("press" + "1") run together naturally and equal texts give equal durations.
SILENCE_THRESHOLD = "0.1%"
SILENCE_MIN_SECONDS = 0.02
PAD_START_SECONDS = 0.05
PAD_END_SECONDS = 0.1

ESPEAK = "espeak-ng"
SOX = "sox"


@dataclass(frozen=True)
class Voice:
    """espeak-ng settings for one caller language.

    `rate` is espeak words per minute: espeak's default is 175; a bank hotline speaks a little
    slower for clarity on a narrow-band line. `slow_rate` is for prompts marked `style: slow` in
    prompts.yaml (the elderly menu).
    """

    language: str
    espeak_voice: str
    rate: int
    slow_rate: int
    pitch: int = 50
    amplitude: int = 100
    word_gap: int = 0  # extra pause between words, in units of 10 ms at normal speed

    def styled(self, style: str | None) -> Voice:
        """The voice for a prompt style (`None`/`normal` or `slow`)."""
        if style in (None, "normal"):
            return self
        if style == "slow":
            return replace(self, rate=self.slow_rate, word_gap=2)
        raise ValueError(f"unknown prompt style {style!r}")


VOICES: dict[str, Voice] = {
    "en": Voice(language="en", espeak_voice="en-us", rate=155, slow_rate=130),
    "zh": Voice(language="zh", espeak_voice="cmn-latn-pinyin", rate=160, slow_rate=135),
}

LANGUAGES: tuple[str, ...] = tuple(VOICES)

#: Mandarin polyphones (and words) espeak-ng 1.51 mispronounces, spelled in tone-numbered pinyin.
#: Applied to every Mandarin text before synthesis, longest first. Keep it small and add a word when a
#: listener reports it; each entry is part of the fingerprint of the texts it changes.
ZH_PRONUNCIATION_FIXES: dict[str, str] = {
    "银行": "yin2hang2",
    "本行": "ben3hang2",
    "行长": "hang2zhang3",
    "还款": "huan2kuan3",
    "重新": "chong2xin1",
    "重复": "chong2fu4",
    "重听": "chong2ting1",
    "调整": "tiao2zheng3",
    "处理": "chu3li3",
    "尽快": "jin3kuai4",
    "服务": "fu2wu4",
    "投诉": "tou2su4",
}


class PromptFileError(ValueError):
    """prompts.yaml is malformed; the message names the id and what is wrong."""


def voice_for(language: str) -> Voice:
    """The voice of a caller language; `KeyError` names the supported languages."""
    try:
        return VOICES[language]
    except KeyError:
        raise KeyError(f"unsupported language {language!r} (supported: {', '.join(LANGUAGES)})") from None


def normalise_text(text: str) -> str:
    """Collapse whitespace so texts differing only in spacing share one rendering (and one hash)."""
    return " ".join(text.split())


def spoken_text(text: str, voice: Voice) -> str:
    """The exact text handed to espeak-ng: normalised, with Mandarin pronunciation fixes applied."""
    text = normalise_text(text)
    if voice.language == "zh":
        for word in sorted(ZH_PRONUNCIATION_FIXES, key=len, reverse=True):
            # Pad with spaces so the pinyin is its own word and does not glue onto a neighbour.
            text = text.replace(word, f" {ZH_PRONUNCIATION_FIXES[word]} ")
        text = normalise_text(text)
    return text


def render_settings(voice: Voice) -> dict[str, Any]:
    """Everything besides the text that shapes the audio; hashed into every fingerprint."""
    return {
        "pipeline": PIPELINE_VERSION,
        "voice": asdict(voice),
        "sample_rate": SAMPLE_RATE,
        "silence": [SILENCE_THRESHOLD, SILENCE_MIN_SECONDS],
        "pad": [PAD_START_SECONDS, PAD_END_SECONDS],
    }


def fingerprint(text: str, voice: Voice) -> str:
    """sha256 (hex) of the voice settings, language and spoken text.

    It names TTS cache files and is stored in sounds/.render-stamp.json, so a file is re-rendered
    exactly when something that changes its audio changes. It does not include the espeak-ng/sox
    versions on purpose: the committed prompts must not all churn because a laptop has a newer
    package (run `make-sounds --force` after a deliberate upgrade).
    """
    payload = {"settings": render_settings(voice), "text": spoken_text(text, voice)}
    encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def espeak_command(voice: Voice, raw_wav: Path) -> list[str]:
    """espeak-ng argv writing `raw_wav` (22.05 kHz); the text goes on stdin.

    Stdin, not argv: names are personal data and argv is visible to every local user in `ps`; it
    also keeps a text starting with '-' from being parsed as an option. `-b 1`: input is UTF-8
    regardless of the process locale.
    """
    return [
        ESPEAK,
        "-b", "1",
        "-v", voice.espeak_voice,
        "-s", str(voice.rate),
        "-p", str(voice.pitch),
        "-a", str(voice.amplitude),
        "-g", str(voice.word_gap),
        "-w", str(raw_wav),
    ]  # fmt: skip


def sox_command(raw_wav: Path, out_wav: Path) -> list[str]:
    """sox argv: 8 kHz mono 16-bit signed WAV, silence trimmed at both ends, fixed pad.

    `-R` (repeatable) and `-D` (no dither) make the output byte-identical run after run, so the
    committed WAVs only change when their text or settings do.
    """
    silence = ["silence", "1", str(SILENCE_MIN_SECONDS), SILENCE_THRESHOLD]
    return [
        SOX, "-R", "-D", "-V1",
        str(raw_wav),
        "-r", str(SAMPLE_RATE), "-c", str(CHANNELS), "-b", str(SAMPLE_WIDTH_BYTES * 8),
        "-e", "signed-integer", "-t", "wav", str(out_wav),
        *silence, "reverse", *silence, "reverse",
        "pad", str(PAD_START_SECONDS), str(PAD_END_SECONDS),
    ]  # fmt: skip


def check_wav_format(path: Path) -> None:
    """Raise `ValueError` unless `path` is a non-empty 8 kHz mono 16-bit WAV (what Asterisk expects)."""
    with wave.open(str(path), "rb") as wav:
        params = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
        frames = wav.getnframes()
    if params != (SAMPLE_RATE, CHANNELS, SAMPLE_WIDTH_BYTES) or frames == 0:
        raise ValueError(f"{path.name}: unexpected WAV format {params} with {frames} frames")


def wav_duration(path: Path) -> float:
    """Duration of a PCM WAV file in seconds.

    Used to compute how long prompts take (menu cost, timeouts counted from the end of a prompt)
    without shelling out to `soxi` for every file.
    """
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate())


_PROMPT_ID = re.compile(r"^[a-z0-9_]+(/[a-z0-9_]+)*$")


def load_prompt_texts(path: Path) -> dict[str, dict[str, str | None]]:
    """Read prompts.yaml: `{id: {language: text or None}}` for every language in `LANGUAGES`.

    `None` means "intentionally silent in that language" (see the file's header): the renderer plays
    nothing for it. Validation is strict because a typo here becomes a silent gap in a live menu.
    The optional `style` key is dropped here; use `load_prompt_styles` for it.
    """
    return {pid: {lang: entry[lang] for lang in LANGUAGES} for pid, entry in _load_entries(path).items()}


def load_prompt_styles(path: Path) -> dict[str, str | None]:
    """The `style` of each prompt in prompts.yaml (`None` for the normal voice)."""
    return {pid: entry.get("style") for pid, entry in _load_entries(path).items()}


#: What a recorded prompt's words may tell about the caller (`discloses:` in prompts.yaml):
#: `personal` (a salutation: allowed before authentication where a line opts in to the name),
#: `account` (a bill, a relationship team: only ever after PIN authentication).
DISCLOSURES = ("personal", "account")


def load_prompt_disclosures(path: Path) -> dict[str, str]:
    """`{id: kind}` for the prompts marked `discloses:` in prompts.yaml (menu validation reads it)."""
    return {pid: entry["discloses"] for pid, entry in _load_entries(path).items() if "discloses" in entry}


def _load_entries(path: Path) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if not isinstance(prompts, dict):
        raise PromptFileError(f"{path}: expected a top-level 'prompts' mapping")
    entries: dict[str, dict[str, Any]] = {}
    for pid, entry in prompts.items():
        if not isinstance(pid, str) or not _PROMPT_ID.match(pid):
            raise PromptFileError(f"{path}: bad prompt id {pid!r} (lowercase, digits, '_', '/')")
        if not isinstance(entry, dict):
            raise PromptFileError(f"{path}: {pid}: expected a mapping of language to text")
        unknown = set(entry) - set(LANGUAGES) - {"style", "discloses"}
        if unknown:
            raise PromptFileError(f"{path}: {pid}: unknown keys {sorted(unknown)}")
        for lang in LANGUAGES:
            if lang not in entry:
                raise PromptFileError(f"{path}: {pid}: no '{lang}' (write '{lang}: null' if intentional)")
            text = entry[lang]
            if text is not None and (not isinstance(text, str) or not normalise_text(text)):
                raise PromptFileError(f"{path}: {pid}: '{lang}' must be non-empty text or null")
        if all(entry[lang] is None for lang in LANGUAGES):
            raise PromptFileError(f"{path}: {pid}: silent in every language")
        style = entry.get("style")
        if style is not None:
            try:
                VOICES[LANGUAGES[0]].styled(style)
            except ValueError as exc:
                raise PromptFileError(f"{path}: {pid}: {exc}") from None
        if "discloses" in entry and entry["discloses"] not in DISCLOSURES:
            raise PromptFileError(f"{path}: {pid}: discloses must be one of {', '.join(DISCLOSURES)}")
        entries[pid] = entry
    return entries
