"""CLI benchmark: how long a person waits for `mediavault ingest` and `mediavault search`. Not a test.

Brings the local stack up (`mediavault up`) in a temporary MEDIAVAULT_HOME on free ports, then
times, each RUNS times as a separate process and taking the median:
  * `python -c "import prefect"`: the baseline, the least any Prefect command can cost here
  * `mediavault ingest` of a small WAV (12 s, a new one each time) with a small WhisperX JSON,
    its flow run reported to the stack's Prefect server (target ratio <= 2.5)
  * `mediavault search` of a word in those transcripts (target ratio <= 2.5)
  * a rejected ingest (a transcript that ends before it starts): the time to one error line
and prints each as a ratio to the baseline. The stack is stopped and the home removed on exit.
Usage: python bench/cli.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

BIN = Path(sys.executable).parent
TARGET = 2.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_wav(path: Path, seconds: float, salt: int) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        frames = bytearray(int(16000 * seconds) * 2)
        frames[:8] = salt.to_bytes(8, "little")  # every file its own content, so every ingest commits
        handle.writeframes(bytes(frames))


def timed(argv: list[str], env: dict[str, str], expect: int = 0) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != expect:
        raise SystemExit(f"{argv[1:3]} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mediavault-bench-cli-"))
    env = {
        **os.environ,
        "MEDIAVAULT_HOME": str(workdir / "home"),
        "MEDIAVAULT_STACK__PREFECT_PORT": str(free_port()),
        "MEDIAVAULT_STACK__WEB_PORT": str(free_port()),
    }
    # As on a user's machine: bytecode is cached (a developer shell may turn that off, and then
    # every run compiles the project's modules again).
    for name in ("PREFECT_API_URL", "PREFECT_HOME", "MEDIAVAULT_VAULT_URL", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    mediavault = str(BIN / "mediavault")
    try:
        started = time.perf_counter()
        timed([mediavault, "up"], env)
        timed([mediavault, "ls"], env)  # writes the bytecode caches, as any first use does
        print(f"stack up in {time.perf_counter() - started:.1f}s (first start, fresh home)")
        transcript = workdir / "talk.json"
        transcript.write_text(
            json.dumps(
                {
                    "language": "en",
                    "segments": [
                        {"start": 0.5, "end": 2.0, "text": "The budget vote is on Tuesday.", "speaker": "S0"},
                        {"start": 2.5, "end": 4.0, "text": "We will publish the minutes.", "speaker": "S1"},
                    ],
                }
            )
        )
        bad = workdir / "bad.json"
        bad.write_text(json.dumps({"segments": [{"start": 4.2, "end": 3.1, "text": "late"}]}))
        baseline, ingests, searches, rejected = [], [], [], []
        for run in range(args.runs):
            media = workdir / f"talk-{run}.wav"
            write_wav(media, 12.0, run + 1)
            baseline.append(timed([sys.executable, "-c", "import prefect"], env))
            ingests.append(timed([mediavault, "ingest", str(media), "-o", str(transcript)], env))
            searches.append(timed([mediavault, "search", "budget"], env))
            rejected.append(timed([mediavault, "ingest", str(media), "-o", str(bad)], env, expect=2))
        base = statistics.median(baseline)
        print(f"baseline: python -c 'import prefect' {base:.2f}s (median of {args.runs})")
        for label, samples in (
            ("ingest (small file, stack up)", ingests),
            ("search", searches),
            ("rejected ingest", rejected),
        ):
            value = statistics.median(samples)
            target = f"target <= {TARGET}" if label != "rejected ingest" else "no target"
            print(f"{label}: {value:.2f}s, ratio {value / base:.2f} ({target})")
    finally:
        subprocess.run([mediavault, "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
