"""A transcript-like synthetic corpus for the search benchmarks, and what people search it for.

Word frequencies follow Zipf's law, as in any spoken or written language: the 10 most frequent
words make up 15 % of what is said, the 100 most frequent 36 %, the 400 most frequent half, and a
long tail of words is each said rarely. The vocabulary starts with
the words of the real English transcripts in tests/fixtures/real, most frequent first ("to", "the",
"and", "we", ...), and goes on with made-up words (one to three syllables, some with an English
suffix, so stemming has work), VOCABULARY_SIZE words in all. The word of rank r is drawn with
probability proportional to 1 / (r + 2.7) (Zipf-Mandelbrot, the usual fit for English text).
A statement holds 6 to 14 words.

Queries are what a person types into a transcript search: words they remember hearing. So each
query is taken from a statement drawn at random from the vault itself (``sample_statements``),
which weighs words by how often they are said, and every query without a speaker filter finds at
least that statement:
  * one word of it (35 %) or two words of it (35 %), leaving out the FUNCTION_WORDS most frequent
    words of the language (nobody searches for "the"), except that every fifth two-word query
    starts with one ("the budget");
  * a quoted phrase of two or three adjacent words of it, at least one outside the function words
    (30 %);
  * every fourth query is also filtered by a speaker (one of the six, not that statement's own).
A single word matches a few hundred statements of 1M (median), two words or a phrase a handful.
The old dense corpus (bench/reindex.py's 34 words; each in a quarter of all statements, so a
two-word query matches about 6 % of the corpus) stays available as a worst case.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

import pyarrow.parquet as pq

from mediavault.vault import LocalVault, manifests

VOCABULARY_SIZE = 50_000
FUNCTION_WORDS = 100
ZIPF_SHIFT = 2.7
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real"
_ONSETS = [*"bcdfghjklmnprstvwz", "br", "ch", "gr", "pl", "st", "tr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
_SUFFIXES = ["", "", "", "", "s", "ing", "ed", "er", "ly", "tion"]


def spoken_words() -> list[str]:
    """The words of the real English transcripts, most frequent first (ties by first use)."""
    counts: dict[str, int] = {}
    for path in sorted(FIXTURES.glob("*_en_*.json")):
        for segment in json.loads(path.read_text()).get("segments", []):
            for word in re.findall(r"[a-z]+", segment.get("text", "").lower()):
                counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda w: -counts[w])


def vocabulary(size: int = VOCABULARY_SIZE, seed: int = 5) -> list[str]:
    words = spoken_words()[:size]
    seen = set(words)
    rng = random.Random(seed)
    while len(words) < size:
        syllables = rng.randint(1, 3)
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
        word += rng.choice(_SUFFIXES)
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class Corpus:
    """Draws statements and queries; the same seed gives the same text."""

    def __init__(self, size: int = VOCABULARY_SIZE) -> None:
        self.words = vocabulary(size)
        weights = [1 / (rank + ZIPF_SHIFT) for rank in range(1, len(self.words) + 1)]
        self.cumulative = list(itertools.accumulate(weights))
        self.function_words = set(self.words[:FUNCTION_WORDS])

    def statement(self, rng: random.Random) -> list[str]:
        return rng.choices(self.words, cum_weights=self.cumulative, k=rng.randint(6, 14))

    def is_content(self, word: str) -> bool:
        return word not in self.function_words

    def queries(self, count: int, statements: list[str], seed: int = 11) -> list[tuple[str, str | None]]:
        """(text, speaker or None) pairs taken from ``statements``, the mix described at the top."""
        rng = random.Random(seed)
        said = [words for words in (re.findall(r"[a-z]+", s.lower()) for s in statements) if words]
        out: list[tuple[str, str | None]] = []
        while len(out) < count:
            words = rng.choice(said)
            content = [w for w in words if self.is_content(w)]
            if not content:
                continue
            kind, i = rng.random(), len(out)
            if kind < 0.35:
                text = rng.choice(content)
            elif kind < 0.70:
                functions = [w for w in words if not self.is_content(w)]
                first = rng.choice(functions) if i % 5 == 0 and functions else rng.choice(content)
                others = [w for w in content if w != first] or content
                text = f"{first} {rng.choice(others)}"
            else:
                text = f'"{self.phrase(words, rng)}"'
            out.append((text, f"SPEAKER_0{i % 6}" if i % 4 == 0 else None))
        return out

    def phrase(self, words: list[str], rng: random.Random) -> str:
        while True:
            length = min(rng.randint(2, 3), len(words))
            start = rng.randrange(len(words) - length + 1)
            piece = words[start : start + length]
            if any(self.is_content(w) for w in piece):
                return " ".join(piece)


def sample_statements(vault: LocalVault, count: int, seed: int = 13) -> list[str]:
    """The text of ``count`` statements drawn at random from the vault (media first, then one of
    their statements), read from the statements Parquet the ingest wrote."""
    rng = random.Random(seed)
    media_ids = sorted(manifests.list_media_ids(vault))
    texts: dict[str, list[str]] = {}
    out = []
    for _ in range(count):
        media_id = rng.choice(media_ids)
        if media_id not in texts:
            manifest = manifests.latest_manifest(vault, media_id)
            key = next(a.key for a in manifest.artifacts if a.kind == "statements")
            texts[media_id] = (
                pq.read_table(vault.local_path(key), columns=["text"]).column("text").to_pylist()
            )
        out.append(rng.choice(texts[media_id]))
    return out
