"""Re-index benchmark on the embedded backends (SecantusDB + Tantivy). Not a timed test.

Builds a synthetic vault of MEDIA x STATEMENTS statements (default 1,000 x 1,000 = 1M) through
the real ingest path, then prints:
  * full re-index time / raw load time of the same documents in the same run
    (raw load = pyarrow read of every statements file + insert_many of the media documents into
    the same MongoDB server + adding the statement documents to a fresh Tantivy index)
  * peak RSS of this process (target < 1 GiB)
  * search p50 / p95 over the whole index (target p95 < 50 ms)
for an English corpus and for a mixed-language one (en, de, es, fr, it, ja, ru: one language per
media item, queries in each language).
Usage: python bench/reindex.py [--media 1000] [--statements 1000] [--queries 300] [--corpus both]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
from pymongo import MongoClient

from mediavault.index import embedded
from mediavault.index.index_store import MongoIndexStore
from mediavault.index.projection import load_applied_edits, media_document
from mediavault.index.reindex import IndexTarget, full_rebuild
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.search import SearchQuery
from mediavault.search.tantivy_index import TantivySearchIndex
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault, manifests

WORDS = [
    "budget",
    "council",
    "school",
    "meeting",
    "water",
    "policy",
    "vote",
    "public",
    "transit",
    "housing",
    "teacher",
    "student",
    "district",
    "report",
    "motion",
    "second",
    "approve",
    "minutes",
    "community",
    "safety",
    "library",
    "park",
    "hospital",
    "energy",
    "climate",
    "tax",
    "revenue",
    "county",
    "state",
    "federal",
    "grant",
    "plan",
    "design",
    "review",
]


# A mixed-language corpus: each media item speaks one of these (Japanese is written without spaces).
MIXED_WORDS = {
    "en": WORDS,
    "de": [
        "Haushalt",
        "Gemeinderat",
        "Schule",
        "Sitzung",
        "Wasser",
        "Abstimmung",
        "Verkehrsverbund",
        "Wohnungsbau",
        "Lehrerin",
        "Bezirk",
        "Antrag",
        "Bibliothek",
        "Krankenhaus",
        "Energiewende",
        "Steuereinnahmen",
        "Bundesfördermittel",
        "Straßenbahnhaltestelle",
    ],
    "fr": [
        "budget",
        "conseil",
        "école",
        "réunion",
        "l'eau",
        "vote",
        "résidentiel",
        "logement",
        "enseignante",
        "quartier",
        "motion",
        "bibliothèque",
        "hôpital",
        "énergie",
        "d'impôts",
        "subvention",
        "aménagement",
    ],
    "it": [
        "bilancio",
        "consiglio",
        "scuola",
        "riunione",
        "dell'acqua",
        "votazione",
        "trasporti",
        "abitazioni",
        "insegnante",
        "quartiere",
        "mozione",
        "biblioteca",
        "ospedale",
        "energia",
        "tasse",
        "finanziamento",
        "progettazione",
    ],
    "es": [
        "presupuesto",
        "concejo",
        "escuela",
        "reunión",
        "agua",
        "votación",
        "transporte",
        "vivienda",
        "maestra",
        "distrito",
        "moción",
        "biblioteca",
        "hospital",
        "energía",
        "impuestos",
        "subvención",
        "diseño",
    ],
    "ru": [
        "бюджет",
        "совет",
        "школа",
        "заседание",
        "вода",
        "голосование",
        "транспорт",
        "жильё",
        "учительница",
        "район",
        "предложение",
        "библиотека",
        "больница",
        "энергетика",
        "налоги",
        "достопримечательностями",
        "финансирование",
    ],
    "ja": [
        "予算",
        "議会",
        "学校",
        "会議",
        "水道",
        "投票",
        "交通",
        "住宅",
        "教師",
        "地区",
        "動議",
        "図書館",
        "病院",
        "エネルギー",
        "税金",
        "補助金",
        "設計",
    ],
}
MIXED_LANGUAGES = sorted(MIXED_WORDS)


def make_media(path: Path, seconds: int, salt: int) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(100)
        out.writeframes(salt.to_bytes(4, "big") + bytes(seconds * 100 - 4))
    return path


def make_whisperx(
    path: Path,
    statements: int,
    rng: random.Random,
    language: str = "en",
    draw: Callable[[random.Random], list[str]] | None = None,
) -> Path:
    """A WhisperX JSON of ``statements`` one-second segments; ``draw`` gives a statement's words
    (by default 6 to 14 of the language's bench words)."""
    vocabulary = MIXED_WORDS[language]
    joiner = "" if language == "ja" else " "
    segments = []
    for i in range(statements):
        words = draw(rng) if draw else [rng.choice(vocabulary) for _ in range(rng.randint(6, 14))]
        start = i * 1.0
        segments.append(
            {
                "start": start,
                "end": start + 0.9,
                "text": " " + joiner.join(words) + ("。" if language == "ja" else "."),
                "speaker": f"SPEAKER_{rng.randint(0, 5):02d}",
                "words": [
                    {"word": w, "start": start + j * 0.05, "end": start + j * 0.05 + 0.04, "score": 0.9}
                    for j, w in enumerate(words)
                ],
            }
        )
    path.write_text(json.dumps({"segments": segments, "language": language}))
    return path


def language_of(index: int, mixed: bool) -> str:
    return MIXED_LANGUAGES[index % len(MIXED_LANGUAGES)] if mixed else "en"


def build_vault(
    root: Path,
    media: int,
    statements: int,
    mixed: bool = False,
    draw: Callable[[random.Random], list[str]] | None = None,
) -> LocalVault:
    vault = LocalVault(root / "vault")
    settings = MediavaultSettings(home=root / "home", mongo_mode="disabled")
    rng = random.Random(7)
    work = root / "inputs"
    work.mkdir()
    for i in range(media):
        language = language_of(i, mixed)
        audio = make_media(work / f"m{i}.wav", statements + 5, i)
        output = make_whisperx(work / f"m{i}.json", statements, rng, language, draw)
        ingest(
            vault,
            IngestRequest(
                media=str(audio),
                outputs=[OutputSpec(str(output))],
                metadata={"title": f"meeting {i}", "owner": f"team-{i % 7}", "language": language},
            ),
            settings,
        )
        audio.unlink()
        output.unlink()
    return vault


def raw_load(vault: LocalVault, database, tantivy_dir: Path) -> float:
    """The baseline: pyarrow read of every statements file, the same statement documents added to a
    fresh Tantivy index, and insert_many of the same media documents. No manifests, no edits, no
    generations, no verification. Media documents are prepared before the clock starts."""
    media_docs, files = [], []
    for media_id in manifests.list_media_ids(vault):
        manifest = manifests.latest_manifest(vault, media_id)
        media_docs.append(media_document(manifest, load_applied_edits(vault, manifest)))
        files.append(vault.root / next(a.key for a in manifest.artifacts if a.kind == "statements"))
    search = TantivySearchIndex(tantivy_dir)
    search.create_generation(1)
    started = time.perf_counter()
    for media_doc, path in zip(media_docs, files, strict=True):
        table = pq.read_table(path, columns=["seq", "start", "end", "speaker", "text", "language", "run_id"])
        search.add(
            1,
            [
                {
                    "id": f"{media_doc['_id']}:{row['run_id']}:{row['seq']}",
                    "media_id": media_doc["_id"],
                    "run_id": row["run_id"],
                    "seq": row["seq"],
                    "owner": media_doc["owner"] or "",
                    "speaker": row["speaker"] or "",
                    "speaker_name": row["speaker"] or "",
                    "text": row["text"].strip(),
                    "start": row["start"],
                    "end": row["end"],
                    "language": media_doc["language"] or row["language"] or "",
                    "title": media_doc["title"] or "",
                    "tags": media_doc["tags"],
                    "ingested_at": media_doc["ingested_at"],
                }
                for row in table.to_pylist()
            ],
        )
    database["raw_media"].insert_many(media_docs)
    search.commit(1)
    return time.perf_counter() - started


def measure(root: Path, media: int, statements: int, queries: int, mixed: bool) -> None:
    """Build a corpus, time the baseline and the full re-index, query it, print the figures."""
    corpus = "mixed-language (" + ", ".join(MIXED_LANGUAGES) + ")" if mixed else "English"
    t0 = time.perf_counter()
    vault = build_vault(root, media, statements, mixed)
    print(
        f"{corpus} synthetic vault: {media} media x {statements} statements built in "
        f"{time.perf_counter() - t0:.0f}s",
        flush=True,
    )
    server = embedded.ensure_running(root / "mongo")
    try:
        database = MongoClient(server.url, tz_aware=True)["bench"]
        baseline = raw_load(vault, database, root / "raw-tantivy")
        target = IndexTarget(vault, MongoIndexStore(database), TantivySearchIndex(root / "tantivy"))
        started = time.perf_counter()
        report = full_rebuild(target)
        rebuild = time.perf_counter() - started
        assert report.statements == media * statements, report
        rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rng = random.Random(11)
        latencies = []
        for i in range(queries):
            vocabulary = MIXED_WORDS[language_of(i, mixed)]
            words = rng.sample(vocabulary, 2)
            text = f'"{words[0]} {words[1]}"' if i % 3 == 0 else " ".join(words)
            query = SearchQuery(text=text, speaker=f"SPEAKER_0{i % 6}" if i % 4 == 0 else None)
            q0 = time.perf_counter()
            target.search.search(query)
            latencies.append((time.perf_counter() - q0) * 1000)
    finally:
        embedded.stop(root / "mongo")
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    ratio = rebuild / baseline
    print(f"  raw load {baseline:.1f}s, full re-index {rebuild:.1f}s: ratio {ratio:.2f} (target <= 1.3)")
    print(f"  peak RSS so far {rss_mib:.0f} MiB (target < 1024)")
    print(
        f"  search over {report.statements:,} statements: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
        "(target p95 < 50)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--media", type=int, default=1000)
    parser.add_argument("--statements", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--corpus", choices=["english", "mixed", "both"], default="both", help="which corpus to measure"
    )
    args = parser.parse_args()
    for mixed in {"english": [False], "mixed": [True], "both": [False, True]}[args.corpus]:
        with tempfile.TemporaryDirectory(dir=os.environ.get("MEDIAVAULT_BENCH_DIR")) as tmp:
            measure(Path(tmp), args.media, args.statements, args.queries, mixed)


if __name__ == "__main__":
    main()
