"""One multilingual parity table for every search engine: Tantivy, the Solr stand-in (whose text
analysis is real Lucene, via tests/lucene_oracle) and a real Solr (MEDIAVAULT_TEST_SOLR_URL).

Statements come from the real transcription fixtures (tests/fixtures/real, provenance in
PROVENANCE.md: segment text verbatim, picked by file and segment index) or are written by hand
for these tests (marked "written by hand"). Each expectation was worked out from the documented
chains (mediavault/search/analysis.py for Tantivy, deployments/solr/mediavault/conf/schema.xml for
Solr) and checked against the tokens each engine's analyzers produce. Where the engines
legitimately differ, a case carries its Solr expectation and says why; nothing here records what
an engine merely happens to return.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

REAL = Path(__file__).resolve().parent / "fixtures" / "real"
ENGINES = ("tantivy", "solr-fake", "solr-real")
SOLR_ENGINES = ("solr-fake", "solr-real")


@dataclass(frozen=True)
class Statement:
    language: str
    source: str  # "<fixture file>#<segment index>" or "written by hand"
    text: str = ""


# key -> (language, fixture file, segment index); the language is the one the ingest would index it
# with (the media's language), except fr-abonner: it keeps the "en" its file wrongly declares.
_REAL: dict[str, tuple[str, str, int]] = {
    "fr-internet": ("fr", "whisperx_fr_call_diarized.json", 7),
    "fr-abonner": ("en", "whisperx_fr_call_diarized.json", 9),
    "fr-cest": ("fr", "whisperx_fr_call_diarized.json", 3),
    "fr-estce": ("fr", "whisperx_fr_call_diarized.json", 11),
    "fr-chaines": ("fr", "whisperx_fr_call_diarized.json", 20),
    "fr-numero": ("fr", "whisperx_fr_call_diarized.json", 39),
    "en-jfk": ("en", "whisper_en_jfk.json", 0),
    "en-pledge": ("en", "whisperx_en_schoolboard_short.json", 24),
    "en-board": ("en", "whisperx_en_schoolboard_short.json", 27),
    "en-bell": ("en", "whisperx_en_schoolboard_short.json", 4),
    "ru-instr": ("ru", "whisper_ru_call_largev3.json", 6),
    "ca-ultim": ("ca", "fasterwhisper_ca_diarized.json", 6),
    "ca-poble": ("ca", "fasterwhisper_ca_diarized.json", 4),
}

_BY_HAND: dict[str, tuple[str, str]] = {
    "fr-plain": ("fr", "Un quartier residentiel, écrit sans accent."),
    "de-compound": ("de", "Die Donaudampfschifffahrtsgesellschaftskapitänswitwe sprach zuerst."),
    "de-houses": ("de", "Die Häuser der Altstadt werden renoviert."),
    "it-elision": ("it", "Il bilancio dell'anno scorso è stato approvato."),
    "es-plural": ("es", "Las elecciones municipales fueron ayer."),
    "ru-long": ("ru", "Мы посетили много достопримечательностей города."),  # a 22-letter word
    "ja-sentence": ("ja", "東京都議会の予算審議が始まりました。"),
    "nl-houses": ("nl", "De huizen aan de gracht worden verbouwd."),
    "en-symbols": ("en", "I don\u2019t think π is 3.14; see x.com for the vote."),  # U+2019 apostrophe
    "none": ("", "Statement without a language: naïve café décor."),
}


@cache
def statements() -> dict[str, Statement]:
    out = {}
    for key, (language, name, index) in _REAL.items():
        segment = json.loads((REAL / name).read_text(encoding="utf-8"))["segments"][index]
        out[key] = Statement(language, f"{name}#{index}", segment["text"].strip())
    for key, (language, text) in _BY_HAND.items():
        out[key] = Statement(language, "written by hand", text)
    return out


@dataclass(frozen=True)
class Case:
    """A query (words and "phrases", with the query's language or None) and the statements it
    finds. ``solr`` is Solr's expectation where it legitimately differs from Tantivy's, with
    ``why``; ``xfail`` maps an engine to the reason it cannot be held to the expectation."""

    query: str
    language: str | None
    expected: tuple[str, ...]
    ranked: bool = False
    solr: tuple[str, ...] | None = None
    why: str = ""
    xfail: dict[str, str] = field(default_factory=dict)

    def expect(self, engine: str) -> tuple[str, ...]:
        return self.solr if engine in SOLR_ENGINES and self.solr is not None else self.expected

    @property
    def name(self) -> str:
        return f"{self.query}@{self.language or 'any'}"


SINGLE_CJK = "Solr indexes CJK text as bigrams only (CJKBigramFilter), so one character alone is not a term"
UAX29_KEEPS = "UAX#29 keeps {0} as one token on Solr; Tantivy's tokenizer splits at the dot"

CASES: list[Case] = [
    # accents: folding finds the other spelling, and the form as typed ranks first (text is boosted)
    Case("residentiel", None, ("fr-plain", "fr-internet"), ranked=True),
    Case("résidentiel", None, ("fr-internet", "fr-plain"), ranked=True),
    Case("chaine", "fr", ("fr-chaines",)),  # stemmed, then folded: chaînes -> chain
    Case("naive cafe decor", None, ("none",)),
    Case("provincia", None, ("ca-poble",)),  # província, Catalan (no stemmer: the folded field)
    # elision: Tantivy splits at the apostrophe, Solr's ElisionFilter removes the article
    Case("internet", None, ("fr-internet", "fr-abonner")),  # fr-abonner is labelled "en": folded field
    Case('"l\'internet"', None, ("fr-internet", "fr-abonner")),
    Case(
        "c'est",
        None,
        ("fr-cest", "fr-chaines", "fr-numero"),
        solr=("fr-cest", "fr-chaines", "fr-numero", "fr-estce"),
        why="Solr removes the elided article from the query too, so c'est also finds est (Est-ce)",
    ),
    Case("anno", "it", ("it-elision",)),  # dell'anno
    Case("dell'anno", None, ("it-elision",)),
    Case("ultim", None, ("ca-ultim",)),  # l'últim: elided and folded
    # long words: split into 40-character pieces the same way at index and query time
    Case("Donaudampfschifffahrtsgesellschaftskapitänswitwe", None, ("de-compound",)),
    Case("donaudampfschifffahrtsgesellschaftskapitanswitwe", None, ("de-compound",)),
    Case("достопримечательностей", None, ("ru-long",)),  # 22 letters, 44 UTF-8 bytes: not split
    Case("достопримечательность", "ru", ("ru-long",)),
    # stemming in the statement's language
    Case("countries", "en", ("en-jfk",)),
    Case("pledges", "en", ("en-pledge",)),
    Case("director", "en", ("en-board",)),
    Case("Haus", "de", ("de-houses",)),  # Häuser
    Case("bilanci", "it", ("it-elision",)),
    Case("elección", "es", ("es-plural",)),
    Case("инструкция", "ru", ("ru-instr",)),
    Case("почта", "ru", ("ru-instr",)),
    Case("internets", "fr", ("fr-internet",)),  # fr-abonner is labelled "en": no French stems
    # the stemmers are not the same code on both engines (Tantivy: rust-stemmers; Solr: Lucene's
    # Snowball classes), and differ on some words
    Case(
        "huis",
        "nl",
        ("nl-houses",),
        solr=(),
        why="Tantivy's Dutch stemmer maps huizen to huis; Lucene's Porter-based Snowball Dutch, the one "
        "Solr 9 ships, gives huiz",
    ),
    Case(
        "even",
        "en",
        (),
        solr=("en-bell",),
        why="Lucene 8's English Snowball stems evening to even; Tantivy's keeps evening",
        xfail={
            "solr-real": "Lucene 9 regenerated its Snowball stemmers; this stem is only checked on Lucene 8.8"
        },
    ),
    # CJK inside an unsegmented sentence
    Case("予算", None, ("ja-sentence",)),
    Case("予算審議", None, ("ja-sentence",)),
    Case("東京", None, ("ja-sentence",)),
    Case("算予", None, ()),
    Case("予", None, ("ja-sentence",), solr=(), why=SINGLE_CJK),
    # apostrophes, numbers, domains
    Case("don\u2019t", None, ("en-symbols",)),  # the typographic apostrophe, as written
    Case("don't", None, ("en-symbols",)),  # ASCII apostrophe: Solr's folding maps U+2019 to '
    Case("they're", "en", ("en-board",)),
    Case("3.14", None, ("en-symbols",)),
    Case("14", None, ("en-symbols",), solr=(), why=UAX29_KEEPS.format("3.14")),
    Case("x.com", None, ("en-symbols",)),
    Case("com", None, ("en-symbols",), solr=(), why=UAX29_KEEPS.format("x.com")),
    Case("558-2273", None, ("fr-numero",)),  # a hyphen separates on both
    # things that must not match
    Case("résidence", None, ()),
    Case("intern", None, ()),  # words match whole, never as prefixes
]


@dataclass(frozen=True)
class Highlight:
    """A query whose snippet must contain ``marked`` (HTML); ``solr`` where Solr marks otherwise."""

    query: str
    language: str | None
    marked: str
    solr: str | None = None
    why: str = ""

    def expect(self, engine: str) -> str:
        return self.solr if engine in SOLR_ENGINES and self.solr is not None else self.marked


HIGHLIGHTS: list[Highlight] = [
    Highlight("residentiel", None, "<b>résidentiel</b>"),  # found through folding
    Highlight("director", "en", "<b>directors</b>"),  # found through the English stems
    Highlight(
        "internet",
        None,
        "l&#x27;<b>Internet</b>",
        solr="<b>l&#x27;Internet</b>",
        why="on Solr l'Internet is one token (the article is removed, the offsets kept)",
    ),
    Highlight(
        "予算",
        None,
        "<b>予</b><b>算</b>",
        solr="<b>予算</b>",
        why="Tantivy marks each character, Solr the bigram",
    ),
    Highlight(
        '"予算審議"', None, "<b>予</b><b>算</b><b>審</b><b>議</b>", solr="<b>予算審議</b>", why="a phrase"
    ),
]
