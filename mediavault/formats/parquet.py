"""Normalized Parquet: one table of statements, one of word timings. Explicit schemas, zstd.

Everything the source JSON said is kept: modelled fields have columns, any other key lands in a
JSON ``extra`` column, and top-level keys are kept in the file's key-value metadata.
"""

from __future__ import annotations

import io
import json
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from mediavault import SCHEMA_VERSION
from mediavault.formats.transcript import Statement, Transcript, Word

STATEMENTS_SCHEMA = pa.schema(
    [
        pa.field("media_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("seq", pa.int32(), nullable=False),
        pa.field("start", pa.float64(), nullable=False),
        pa.field("end", pa.float64(), nullable=False),
        pa.field("speaker", pa.string()),
        pa.field("text", pa.string(), nullable=False),
        pa.field("language", pa.string()),
        pa.field("segment_id", pa.int64()),
        pa.field("seek", pa.int64()),
        pa.field("tokens", pa.list_(pa.int64())),
        pa.field("temperature", pa.float64()),
        pa.field("avg_logprob", pa.float64()),
        pa.field("compression_ratio", pa.float64()),
        pa.field("no_speech_prob", pa.float64()),
        pa.field("has_words", pa.bool_(), nullable=False),
        pa.field("extra", pa.string()),
    ]
)

WORDS_SCHEMA = pa.schema(
    [
        pa.field("media_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("statement_seq", pa.int32(), nullable=False),
        pa.field("word_seq", pa.int32(), nullable=False),
        pa.field("word", pa.string(), nullable=False),
        pa.field("start", pa.float64()),
        pa.field("end", pa.float64()),
        pa.field("score", pa.float64()),
        pa.field("probability", pa.float64()),
        pa.field("speaker", pa.string()),
        pa.field("extra", pa.string()),
    ]
)

META_PREFIX = "mediavault."


def _extra(value: dict[str, Any] | None) -> str | None:
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else None


def _metadata(table: str, transcript: Transcript, source_sha256: str) -> dict[str, str]:
    return {
        f"{META_PREFIX}schema_version": str(SCHEMA_VERSION),
        f"{META_PREFIX}table": table,
        f"{META_PREFIX}format": transcript.format,
        f"{META_PREFIX}source_sha256": source_sha256,
        f"{META_PREFIX}language": json.dumps(transcript.language),
        f"{META_PREFIX}word_segments": transcript.word_segments,
        f"{META_PREFIX}top_level": json.dumps(transcript.top_level, ensure_ascii=False),
    }


def statements_table(transcript: Transcript, media_id: str, run_id: str, source_sha256: str) -> pa.Table:
    rows = [
        {
            "media_id": media_id,
            "run_id": run_id,
            "seq": s.seq,
            "start": float(s.start),
            "end": float(s.end),
            "speaker": s.speaker,
            "text": s.text,
            "language": transcript.language,
            "segment_id": s.segment_id,
            "seek": s.seek,
            "tokens": s.tokens,
            "temperature": s.temperature,
            "avg_logprob": s.avg_logprob,
            "compression_ratio": s.compression_ratio,
            "no_speech_prob": s.no_speech_prob,
            "has_words": s.words is not None,
            "extra": _extra(s.extra),
        }
        for s in transcript.statements
    ]
    schema = STATEMENTS_SCHEMA.with_metadata(_metadata("statements", transcript, source_sha256))
    return pa.Table.from_pylist(rows, schema=schema)


def words_table(transcript: Transcript, media_id: str, run_id: str, source_sha256: str) -> pa.Table:
    rows = [
        {
            "media_id": media_id,
            "run_id": run_id,
            "statement_seq": s.seq,
            "word_seq": i,
            "word": w.word,
            "start": w.start,
            "end": w.end,
            "score": w.score,
            "probability": w.probability,
            "speaker": w.speaker,
            "extra": _extra(w.extra),
        }
        for s in transcript.statements
        for i, w in enumerate(s.words or [])
    ]
    schema = WORDS_SCHEMA.with_metadata(_metadata("words", transcript, source_sha256))
    return pa.Table.from_pylist(rows, schema=schema)


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", use_dictionary=True, write_statistics=True)
    return sink.getvalue()


def read_transcript(statements: BinaryIO | bytes, words: BinaryIO | bytes) -> Transcript:
    """Rebuild a Transcript from its two Parquet files (the inverse of normalization)."""
    s_table = pq.read_table(pa.BufferReader(statements) if isinstance(statements, bytes) else statements)
    w_table = pq.read_table(pa.BufferReader(words) if isinstance(words, bytes) else words)
    meta = {k.decode(): v.decode() for k, v in (s_table.schema.metadata or {}).items()}
    version = int(meta.get(f"{META_PREFIX}schema_version", "0"))
    if version > SCHEMA_VERSION:
        raise ValueError(f"Parquet schema version {version} is newer than this mediavault reads")
    words_by_statement: dict[int, list[Word]] = {}
    for row in w_table.to_pylist():
        words_by_statement.setdefault(row["statement_seq"], []).append(
            Word(
                word=row["word"],
                start=row["start"],
                end=row["end"],
                score=row["score"],
                probability=row["probability"],
                speaker=row["speaker"],
                extra=json.loads(row["extra"]) if row["extra"] else None,
            )
        )
    statements_out = []
    for row in s_table.to_pylist():
        statements_out.append(
            Statement(
                seq=row["seq"],
                start=row["start"],
                end=row["end"],
                text=row["text"],
                speaker=row["speaker"],
                words=words_by_statement.get(row["seq"], []) if row["has_words"] else None,
                segment_id=row["segment_id"],
                seek=row["seek"],
                tokens=row["tokens"],
                temperature=row["temperature"],
                avg_logprob=row["avg_logprob"],
                compression_ratio=row["compression_ratio"],
                no_speech_prob=row["no_speech_prob"],
                extra=json.loads(row["extra"]) if row["extra"] else None,
            )
        )
    return Transcript(
        format=meta.get(f"{META_PREFIX}format", "unknown"),
        statements=statements_out,
        language=json.loads(meta.get(f"{META_PREFIX}language", "null")),
        top_level=json.loads(meta.get(f"{META_PREFIX}top_level", "{}")),
        word_segments=meta.get(f"{META_PREFIX}word_segments", "absent"),
    )
