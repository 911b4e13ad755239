"""Keep word timings through a text correction.

A corrected statement is new text over the AI's timed words. Words the correction did not change
keep their exact times (and scores); changed or inserted words get times spread over the span they
replace, and carry no score, so players can still seek to them and nobody mistakes them for
measured times.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import replace

from mediavault.formats.transcript import Word

_WORD_CHARS = re.compile(r"[\W_]+", re.UNICODE)


def _key(token: str) -> str:
    """Case and punctuation do not make a word different ("Ask," and "ask")."""
    return _WORD_CHARS.sub("", token.casefold()) or token.casefold()


def align_words(text: str, words: list[Word], start: float, end: float) -> list[Word]:
    """Words of ``text`` with timings carried over from ``words`` (the statement spans
    ``start``-``end``). Untimed originals give untimed words; no words give none."""
    tokens = text.split()
    if not words:
        return []
    if all(w.start is None for w in words):
        return [Word(word=token) for token in tokens]
    matcher = difflib.SequenceMatcher(None, [_key(w.word) for w in words], [_key(t) for t in tokens], False)
    aligned: list[Word] = []
    for op, old_lo, old_hi, new_lo, new_hi in matcher.get_opcodes():
        if op == "equal":
            for offset in range(new_hi - new_lo):
                aligned.append(replace(words[old_lo + offset], word=tokens[new_lo + offset]))
        elif op in ("replace", "insert"):
            span_start = _bound(words, old_lo, old_hi, start, before=True, aligned=aligned)
            span_end = _bound(words, old_lo, old_hi, end, before=False, aligned=aligned)
            span_start = min(span_start, span_end)  # a statement start later than its words
            aligned.extend(_spread(tokens[new_lo:new_hi], span_start, span_end, words))
    return _forward_only(aligned)


def _forward_only(words: list[Word]) -> list[Word]:
    """Estimated times never step back before a neighbour's (AI timings can overlap or run
    backwards; measured words keep theirs)."""
    latest = None
    out = []
    for word in words:
        if word.score is None and word.start is not None and latest is not None and word.start < latest:
            end = max(word.end if word.end is not None else latest, latest)
            word = replace(word, start=latest, end=end)
        if word.start is not None:
            latest = word.start if latest is None else max(latest, word.start)
        out.append(word)
    return out


def _bound(
    words: list[Word], old_lo: int, old_hi: int, fallback: float, before: bool, aligned: list[Word]
) -> float:
    """Where a replaced span starts (``before``) or ends: the replaced words' own times, else the
    neighbours' edges, else the statement's."""
    replaced = words[old_lo:old_hi]
    if before:
        own = [w.start for w in replaced if w.start is not None]
        if own:
            return min(own)
        previous = next(
            (w.end if w.end is not None else w.start for w in reversed(aligned) if w.start is not None), None
        )
        return previous if previous is not None else fallback
    own = [w.end for w in replaced if w.end is not None]
    if own:
        return max(own)
    following = next((w.start for w in words[old_hi:] if w.start is not None), None)
    return following if following is not None else fallback


def _spread(tokens: list[str], start: float, end: float, words: list[Word]) -> list[Word]:
    """Times over [start, end] in proportion to each token's length."""
    speaker = next((w.speaker for w in words if w.speaker), None)
    total = sum(len(t) for t in tokens) or 1
    out, cursor = [], start
    for token in tokens:
        length = (end - start) * len(token) / total
        out.append(Word(word=token, start=round(cursor, 3), end=round(cursor + length, 3), speaker=speaker))
        cursor += length
    return out
