"""Synthesize demo audio for whisperx_en_schoolboard_short.json (the original recording is not available).

Each segment's text is spoken by espeak-ng, one voice per speaker label, at a speed chosen so the speech
fills the segment's [start, end] window; it is then fitted to the window with sox (tempo, trim, fade) and
placed at the segment's start time over silence. The result is 16 kHz mono Ogg Vorbis.

Needs espeak-ng and sox with Ogg Vorbis support (Debian: apt-get install espeak-ng sox libsox-fmt-all).
Run from anywhere:  python3 mediavault/samples/make_schoolboard_audio.py [OUTPUT]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRANSCRIPT = HERE / "whisperx_en_schoolboard_short.json"
OUTPUT = HERE / "schoolboard_synth.ogg"
RATE = 16000
TAIL_SECONDS = 1.0
VOICES = {"SPEAKER_06": "en-us+m3", "SPEAKER_05": "en+f3", "SPEAKER_01": "en-gb+m7"}
SPARE_VOICES = ["en-us+f2", "en+m1", "en-gb+f4"]
BASE_WPM, MIN_WPM, MAX_WPM = 175, 110, 450
FILL = 0.95
"""Share of a segment's window the speech aims to fill."""
VORBIS_QUALITY = 2


def run(*command: str, stdin: str | None = None) -> None:
    subprocess.run(command, input=stdin, text=True, check=True, capture_output=True)


def seconds(path: Path) -> float:
    with wave.open(str(path)) as audio:
        return audio.getnframes() / audio.getframerate()


def speak(text: str, voice: str, wpm: int, target: Path, work: Path) -> float:
    """Speak TEXT into TARGET (16 kHz mono 16-bit WAV, edge silence removed); its length in seconds."""
    raw = work / "espeak.wav"
    run("espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), "--stdin", stdin=text)
    trim_edges = ["silence", "1", "0.01", "0.1%", "reverse", "silence", "1", "0.01", "0.1%", "reverse"]
    run("sox", "-R", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(target), *trim_edges)
    return seconds(target)


def fit(source: Path, length: float, window: float, target: Path) -> None:
    """Squeeze SOURCE into WINDOW seconds if it is longer (tempo, then trim with a short fade)."""
    effects: list[str] = []
    if length > window:
        effects += ["tempo", "-s", f"{length / (window * FILL):.4f}"]
    effects += ["trim", "0", f"{window:.3f}", "fade", "t", "0.005", "-0", "0.02"]
    run("sox", "-R", str(source), str(target), *effects)


def voice_for(speaker: str | None, chosen: dict[str, str]) -> str:
    label = speaker or "unknown"
    if label not in chosen:
        spare = [v for v in SPARE_VOICES if v not in chosen.values()] or SPARE_VOICES
        chosen[label] = VOICES.get(label) or spare[0]
    return chosen[label]


def build(transcript: Path, output: Path) -> None:
    segments = json.loads(transcript.read_text(encoding="utf-8"))["segments"]
    total_seconds = max(s["end"] for s in segments) + TAIL_SECONDS
    timeline = bytearray(2 * round(total_seconds * RATE))
    chosen: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for segment in segments:
            text, window = segment["text"].strip(), segment["end"] - segment["start"]
            if not text or window <= 0:
                continue
            voice = voice_for(segment.get("speaker"), chosen)
            natural = speak(text, voice, BASE_WPM, work / "speech.wav", work)
            wpm = min(MAX_WPM, max(MIN_WPM, round(BASE_WPM * natural / (window * FILL))))
            length = speak(text, voice, wpm, work / "speech.wav", work)
            fit(work / "speech.wav", length, window, work / "fitted.wav")
            with wave.open(str(work / "fitted.wav")) as audio:
                samples = audio.readframes(audio.getnframes())
            offset = 2 * round(segment["start"] * RATE)
            timeline[offset : offset + len(samples)] = samples[: len(timeline) - offset]
        mixed = work / "timeline.wav"
        with wave.open(str(mixed), "wb") as audio:
            audio.setnchannels(1)
            audio.setsampwidth(2)
            audio.setframerate(RATE)
            audio.writeframes(bytes(timeline))
        run("sox", "-R", str(mixed), "--comment", "", "-C", str(VORBIS_QUALITY), str(output))
    print(f"{output}: {total_seconds:.2f} s, {output.stat().st_size} bytes, voices {chosen}")


if __name__ == "__main__":
    build(TRANSCRIPT, Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT)
