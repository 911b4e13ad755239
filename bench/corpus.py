"""A transcript-like synthetic corpus for the search benchmarks, and what people search it for.

Word frequencies follow Zipf's law, as in any spoken or written language: a few function words make
up half of what is said, and a long tail of words is each said rarely. The vocabulary starts with
the words of the real English transcripts in tests/fixtures/real, most frequent first ("to", "the",
"and", "we", ...), and goes on with made-up words (one to three syllables, some with an English
suffix, so stemming has work), VOCABULARY_SIZE words in all. The word of rank r is drawn with
probability proportional to 1 / (r + 2.7) (Zipf-Mandelbrot, the usual fit for English text).
A statement holds 6 to 14 words.

Queries are what a person types into a transcript search, mostly words they remember hearing:
  * one word (35 %) or two words (35 %), drawn by how often they are said, leaving out the
    FUNCTION_WORDS most frequent ones (nobody searches for "the"), except that every fifth two-word
    query starts with one ("the budget");
  * a quoted phrase of two or three adjacent words of a generated statement, with at least one
    word outside the function words (30 %);
  * every fourth query is also filtered by a speaker.
The old dense corpus (bench/reindex.py's 34 words; each in a quarter of all statements, so a
two-word query matches 6 % of the corpus) stays available as a worst case.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from bisect import bisect_right
from pathlib import Path

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
        self.content_from = self.cumulative[FUNCTION_WORDS - 1]

    def statement(self, rng: random.Random) -> list[str]:
        return rng.choices(self.words, cum_weights=self.cumulative, k=rng.randint(6, 14))

    def content_word(self, rng: random.Random) -> str:
        """A word outside the function words, by how often it is said."""
        point = rng.uniform(self.content_from, self.cumulative[-1])
        return self.words[min(bisect_right(self.cumulative, point), len(self.words) - 1)]

    def is_content(self, word: str) -> bool:
        return word not in self.words[:FUNCTION_WORDS]

    def queries(self, count: int, seed: int = 11) -> list[tuple[str, str | None]]:
        """(text, speaker or None) pairs, the mix described at the top."""
        rng = random.Random(seed)
        out: list[tuple[str, str | None]] = []
        for i in range(count):
            kind = rng.random()
            if kind < 0.35:
                text = self.content_word(rng)
            elif kind < 0.70:
                first = rng.choice(self.words[:FUNCTION_WORDS]) if i % 5 == 0 else self.content_word(rng)
                text = f"{first} {self.content_word(rng)}"
            else:
                text = f'"{self.phrase(rng)}"'
            out.append((text, f"SPEAKER_0{i % 6}" if i % 4 == 0 else None))
        return out

    def phrase(self, rng: random.Random) -> str:
        while True:
            words = self.statement(rng)
            length = rng.randint(2, 3)
            start = rng.randrange(len(words) - length + 1)
            piece = words[start : start + length]
            if any(self.is_content(w) for w in piece):
                return " ".join(piece)
