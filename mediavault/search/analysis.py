"""How statement text becomes search terms on the embedded (Tantivy) backend.

One tokenizer for every chain, so that index and query split text the same way:
- a word is a run of letters and digits (apostrophes, dots and hyphens separate: ``l'Internet``
  gives ``l`` and ``internet``, ``3.14`` gives ``3`` and ``14``);
- Chinese and Japanese characters (Han, Hiragana, Katakana) are one token each, so a word inside
  an unsegmented sentence is found as a phrase of its characters (``予算`` in ``…会の予算審議…``);
- a word longer than ``MAX_TOKEN_CHARS`` is split into pieces of that length instead of being
  dropped, identically at index and at query time.

Three chains sit on top of it, each in its own field:
- ``text`` (stored): lower-cased. Matches the form as written; it gets the higher boost, so
  ``résidentiel`` ranks a statement that says ``résidentiel`` above one saying ``residentiel``;
- ``text_folded``: lower-cased and folded to ASCII (``residentiel`` finds ``résidentiel``);
- ``text_<lang>``: lower-cased, stemmed with the Snowball stemmer of the statement's language,
  then folded (``councils`` finds ``council``), only for ``STEMMED_LANGUAGES``. A statement in
  another language, or with none, is found through the first two fields.

A query word or quoted phrase is analysed by each chain and matches if any field matches it (as a
term, or as a phrase when it analyses to several tokens); all words and phrases must match.
"""

from __future__ import annotations

import functools
from typing import Any

import tantivy

MAX_TOKEN_CHARS = 40
_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}"
TOKEN_PATTERN = rf"[{_CJK}]|[^\W_{_CJK}]{{1,{MAX_TOKEN_CHARS}}}"
# language code -> Tantivy's Snowball stemmer
STEMMED_LANGUAGES = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "it": "italian",
    "es": "spanish",
    "pt": "portuguese",
    "nl": "dutch",
    "ru": "russian",
}
EXACT_FIELD, FOLDED_FIELD = "text", "text_folded"
EXACT_BOOST = 2.0
# Bump when a chain changes: generations built before are refused until a full re-index (the
# version is written beside each generation; a rollback to an older one is refused the same way).
ANALYSIS_VERSION = 2


def stem_field(language: str) -> str:
    return f"text_{language}"


def language_key(language: str | None) -> str | None:
    """``en``, ``en-US``, ``EN_gb`` -> ``en`` when it has a stemmer, else None."""
    if not language:
        return None
    key = language.strip().lower().replace("_", "-").split("-", 1)[0]
    return key if key in STEMMED_LANGUAGES else None


def _analyzer(*filters: Any) -> tantivy.TextAnalyzer:
    builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(TOKEN_PATTERN))
    for item in filters:
        builder = builder.filter(item)
    return builder.build()


def analyzers() -> dict[str, tantivy.TextAnalyzer]:
    """Tokenizer name -> analyzer, to register on every index (names are the field names)."""
    chains = {
        EXACT_FIELD: _analyzer(tantivy.Filter.lowercase()),
        FOLDED_FIELD: _analyzer(tantivy.Filter.lowercase(), tantivy.Filter.ascii_fold()),
    }
    for code, stemmer in STEMMED_LANGUAGES.items():
        chains[stem_field(code)] = _analyzer(
            tantivy.Filter.lowercase(), tantivy.Filter.stemmer(stemmer), tantivy.Filter.ascii_fold()
        )
    return chains


ANALYZERS = analyzers()


def text_fields(text: str, language: str | None) -> dict[str, str]:
    """The analysed text fields of one statement."""
    fields = {EXACT_FIELD: text, FOLDED_FIELD: text}
    key = language_key(language)
    if key:
        fields[stem_field(key)] = text
    return fields


def terms(field: str, text: str) -> list[str]:
    """The tokens of ``text`` in one chain."""
    return ANALYZERS[field].analyze(text)


CACHED_PIECE_CHARS = 64


def _query_terms(field: str, text: str) -> tuple[str, ...]:
    """``terms`` of a query word or phrase. Short ones are cached (every search analyses each in
    up to ten chains, and people search the same words again and again); a long phrase is not,
    so the cache stays small (16,384 entries of at most 64 characters) whatever is typed."""
    if len(text) > CACHED_PIECE_CHARS:
        return tuple(ANALYZERS[field].analyze(text))
    return _cached_terms(field, text)


@functools.lru_cache(maxsize=16384)
def _cached_terms(field: str, text: str) -> tuple[str, ...]:
    return tuple(ANALYZERS[field].analyze(text))


def piece_query(
    schema: tantivy.Schema,
    piece: str,
    language: str | None,
    within: tantivy.Query | None = None,
    searcher: Any = None,
) -> tantivy.Query | None:
    """One query word or phrase, matched in any chain; None when it holds no token at all.

    ``searcher`` lets a word typed without accents still rank its own spelling first: when the
    index holds accented variants of it (the folded term is in more statements than the written
    one), the written form is asked too, with the boost.

    ``within`` (a selective filter) is put inside each alternative rather than beside the union of
    them: Tantivy seeks a union of long posting lists slowly, while each small intersection is
    driven by the filter's short list (media matches: 0.2 ms instead of 6.5 ms at 1M statements).
    """
    key = language_key(language)
    fields = [EXACT_FIELD, FOLDED_FIELD] + (
        [stem_field(key)] if key else [stem_field(code) for code in STEMMED_LANGUAGES]
    )
    alternatives: list[tuple[Any, tantivy.Query]] = []
    analysed = {field: _query_terms(field, piece) for field in fields}
    # Typed without accents: the folded field finds everything the exact one would, so unless
    # accented variants are indexed the exact field is not asked (one posting list less per word)
    # and the folded match gets its boost.
    plain = analysed[EXACT_FIELD] == analysed[FOLDED_FIELD] and not (
        searcher is not None and _has_accented_variants(searcher, analysed[EXACT_FIELD])
    )
    for field in fields:
        found = analysed[field]
        if not found or (plain and field == EXACT_FIELD):
            continue
        query = (
            tantivy.Query.term_query(schema, field, found[0])
            if len(found) == 1
            else tantivy.Query.phrase_query(schema, field, list(found))
        )
        if within is not None:
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, within)])
        if field == EXACT_FIELD or (plain and field == FOLDED_FIELD):
            query = tantivy.Query.boost_query(query, EXACT_BOOST)
        alternatives.append((tantivy.Occur.Should, query))
    if not alternatives:
        return None
    return alternatives[0][1] if len(alternatives) == 1 else tantivy.Query.boolean_query(alternatives)


def _has_accented_variants(searcher: Any, tokens: tuple[str, ...]) -> bool:
    """True when a token's folded form is in more statements than the token as written (written
    matches are a subset of folded ones, so equal counts mean the same statements)."""
    return any(searcher.doc_freq(FOLDED_FIELD, t) != searcher.doc_freq(EXACT_FIELD, t) for t in tokens)
