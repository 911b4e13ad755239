"""Word timings survive text corrections: properties of ``mediavault.media.alignment.align_words``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediavault.formats.transcript import Word
from mediavault.media.alignment import align_words

TOKENS = st.text(alphabet="abcdefgé,.'-", min_size=1, max_size=8).filter(lambda t: t.strip() == t and t)


def timed(tokens: list[str]) -> list[Word]:
    return [
        Word(word=t, start=i * 1.0, end=i * 1.0 + 0.8, score=0.9, speaker="S1") for i, t in enumerate(tokens)
    ]


def test_unchanged_words_keep_their_times_and_scores() -> None:
    words = timed(["ask", "not", "what", "your", "country"])
    aligned = align_words("Ask not, what our great country", words, 0.0, 5.0)
    assert [w.word for w in aligned] == ["Ask", "not,", "what", "our", "great", "country"]
    assert (aligned[0].start, aligned[0].score) == (0.0, 0.9)
    assert (aligned[2].start, aligned[2].end) == (2.0, 2.8)
    assert (aligned[5].start, aligned[5].end) == (4.0, 4.8)
    # "your" became "our great": they share its span, carry no score, and stay in order
    assert aligned[3].start == 3.0 and aligned[4].end == pytest.approx(3.8)
    assert aligned[3].score is None and aligned[3].end <= aligned[4].start


def test_estimated_times_never_step_back_over_messy_ai_timings() -> None:
    overlapping = [Word("a", 1.0, 2.5, 0.9), Word("b", 2.0, 3.0, 0.9)]
    inserted = align_words("a X b", overlapping, 0.0, 3.0)
    assert [w.word for w in inserted] == ["a", "X", "b"] and inserted[1].start >= inserted[0].start
    no_end = align_words("a Y", [Word("a", 1.0, None, 0.9), Word("b")], 0.0, 2.0)
    assert no_end[1].start >= 1.0
    late_statement = align_words("X a", [Word("a", 1.0, 1.5, 0.9)], 1.5, 2.0)
    assert late_statement[1].start == 1.0  # the measured word keeps its time
    for aligned in (inserted, no_end, late_statement):
        starts = [w.start for w in aligned]
        assert starts == sorted(starts)


def test_untimed_or_missing_words() -> None:
    assert align_words("new text", [], 0.0, 1.0) == []
    untimed = align_words("two words", [Word(word="one")], 0.0, 1.0)
    assert [(w.word, w.start) for w in untimed] == [("two", None), ("words", None)]


@pytest.mark.hardening
@given(
    st.lists(TOKENS, min_size=1, max_size=30),
    st.lists(
        st.tuples(st.integers(0, 40), st.sampled_from(["drop", "replace", "insert"]), TOKENS), max_size=6
    ),
)
def test_alignment_properties(original: list[str], changes: list[tuple[int, str, str]]) -> None:
    words = timed(original)
    edited = list(original)
    for position, kind, token in changes:
        at = position % (len(edited) + 1)
        if kind == "insert":
            edited.insert(at, token)
        elif edited and at < len(edited):
            if kind == "drop":
                del edited[at]
            else:
                edited[at] = token
    text = " ".join(edited) or "x"
    aligned = align_words(text, words, 0.0, float(len(original)))
    assert [w.word for w in aligned] == text.split()
    starts = [w.start for w in aligned]
    assert starts == sorted(starts), "times go forward"
    assert all(0.0 <= w.start <= w.end <= len(original) for w in aligned)
    if edited == original:
        assert [(w.start, w.end, w.score) for w in aligned] == [(w.start, w.end, w.score) for w in words]
    scored = [w for w in aligned if w.score is not None]
    measured = {(w.start, w.end) for w in words}
    assert all((w.start, w.end) in measured for w in scored), "a scored word has a measured time"
