"""The normalized transcript: statements (segments) and word timings, losing nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Segment keys that have their own column; everything else goes to ``extra``.
SEGMENT_NUMBER_FIELDS = ("temperature", "avg_logprob", "compression_ratio", "no_speech_prob")
SEGMENT_INT_FIELDS = ("id", "seek")
SEGMENT_KNOWN = {
    "start",
    "end",
    "text",
    "speaker",
    "words",
    "tokens",
    *SEGMENT_NUMBER_FIELDS,
    *SEGMENT_INT_FIELDS,
}
WORD_KNOWN = {"word", "start", "end", "score", "probability", "speaker"}


@dataclass
class Word:
    word: str
    start: float | None = None
    end: float | None = None
    score: float | None = None
    probability: float | None = None
    speaker: str | None = None
    extra: dict[str, Any] | None = None

    def to_json_obj(self) -> dict[str, Any]:
        out: dict[str, Any] = {"word": self.word}
        for name in ("start", "end", "score", "probability", "speaker"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(self.extra or {})
        return out


@dataclass
class Statement:
    """One speaker statement (a segment or a subtitle cue)."""

    seq: int
    start: float
    end: float
    text: str
    speaker: str | None = None
    words: list[Word] | None = None
    """None when the source had no word list (absent or null; ``extra`` keeps a null)."""
    segment_id: int | None = None
    seek: int | None = None
    tokens: list[int] | None = None
    temperature: float | None = None
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    no_speech_prob: float | None = None
    extra: dict[str, Any] | None = None

    def to_json_obj(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.segment_id is not None:
            out["id"] = self.segment_id
        if self.seek is not None:
            out["seek"] = self.seek
        out.update({"start": self.start, "end": self.end, "text": self.text})
        if self.tokens is not None:
            out["tokens"] = self.tokens
        for name in SEGMENT_NUMBER_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.speaker is not None:
            out["speaker"] = self.speaker
        if self.words is not None:
            out["words"] = [w.to_json_obj() for w in self.words]
        out.update(self.extra or {})
        return out


@dataclass
class Transcript:
    """A parsed AI output. ``top_level`` keeps every top-level key we do not model."""

    format: str
    statements: list[Statement]
    language: str | None = None
    top_level: dict[str, Any] = field(default_factory=dict)
    word_segments: str = "absent"
    """'absent', or 'flattened' when the source's word_segments equals the flattened words."""

    def all_words(self) -> list[dict[str, Any]]:
        return [w.to_json_obj() for s in self.statements for w in (s.words or [])]

    def max_time(self) -> float:
        """The latest timestamp anywhere in the transcript (0 when empty)."""
        latest = 0.0
        for statement in self.statements:
            latest = max(latest, statement.end)
            for word in statement.words or []:
                if word.end is not None:
                    latest = max(latest, word.end)
        return latest

    def speakers(self) -> list[str]:
        return sorted({s.speaker for s in self.statements if s.speaker})

    def to_json_obj(self) -> dict[str, Any]:
        """Rebuild the WhisperX/Whisper JSON this transcript came from (semantically equal)."""
        out: dict[str, Any] = {"segments": [s.to_json_obj() for s in self.statements]}
        if self.word_segments == "flattened":
            out["word_segments"] = self.all_words()
        if self.language is not None or "language" in self.top_level:
            out["language"] = self.language
        out.update({k: v for k, v in self.top_level.items() if k != "language"})
        return out
