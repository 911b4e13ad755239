"""Translations and summaries as runs of their own kinds: ingest, manifest, search, export, API.

Real servers only: the vault over a local directory and moto S3, MongoDB (SecantusDB), Tantivy on
disk, the HTTP API under uvicorn. The French translations and the summary are hand-written
(tests/fixtures/handwritten/README.md)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from mediavault.backends import index_target
from mediavault.errors import InputError
from mediavault.formats.summary import MAX_SUMMARY_BYTES, validate_summary
from mediavault.index import reindex
from mediavault.index.index_store import MongoIndexStore
from mediavault.index.projection import project
from mediavault.index.reindex import IndexTarget
from mediavault.ingest import inbox
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, RunRequest, add_run, ingest
from mediavault.media import edits
from mediavault.media.export import export, run_output
from mediavault.search import SearchQuery
from mediavault.search.tantivy_index import TantivySearchIndex
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault, Vault, manifests
from mediavault.vault.models import Manifest, OutputRecord, Run, RunProvenance, canonical_json, compute_run_id
from tests import web_site
from tests.conftest import FIXTURES, REAL
from tests.helpers import JFK_JSON, JFK_MEDIA, make_wav, stored_keys
from tests.test_cli import Runner
from tests.web_site import Site

HANDWRITTEN = FIXTURES / "handwritten"
JFK_FR = HANDWRITTEN / "jfk_fr_translation.srt"
JFK_SUMMARY = HANDWRITTEN / "jfk_summary.md"
SCHOOLBOARD_FR = HANDWRITTEN / "schoolboard_fr_translation_excerpt.vtt"


@pytest.fixture
def settings(tmp_path: Path) -> MediavaultSettings:
    return MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled")


def ingest_jfk(vault: Vault, settings: MediavaultSettings, **provenance) -> tuple[str, str]:
    result = ingest(
        vault,
        IngestRequest(
            media=str(JFK_MEDIA),
            outputs=[OutputSpec(str(JFK_JSON))],
            metadata={"title": "Ask not", "owner": "alice"},
            provenance={"model": "openai-whisper", **provenance},
        ),
        settings,
    )
    assert result.run_id is not None
    return result.media_id, result.run_id


def translate(
    vault: Vault,
    settings: MediavaultSettings,
    media_id: str,
    source: str | None,
    language: str | None = "fr",
    path: Path = JFK_FR,
    model: str = "hand-written",
):
    request = RunRequest(
        "translation",
        [OutputSpec(str(path))],
        source_run_id=source,
        language=language,
        provenance={"model": model, "version": "1", "parameters": {"style": "formal"}},
        media_id=media_id,
    )
    return add_run(vault, request, settings)


def summarize(
    vault: Vault, settings: MediavaultSettings, media_id: str, source: str | None, path=JFK_SUMMARY
):
    request = RunRequest(
        "summary",
        [OutputSpec(str(path))],
        source_run_id=source,
        provenance={"model": "notes"},
        media_id=media_id,
    )
    return add_run(vault, request, settings)


# -- the model -------------------------------------------------------------------------------------


def test_run_ids_keep_transcripts_and_tell_kinds_apart() -> None:
    outputs = [OutputRecord(format="srt", original_filename="a.srt", sha256="ab" * 32, size=10)]
    provenance = RunProvenance(model="m")
    legacy = {"outputs": [["srt", "ab" * 32]], "provenance": provenance.model_dump(mode="json")}
    transcript = compute_run_id(outputs, provenance)
    assert transcript == hashlib.sha256(canonical_json(legacy)).hexdigest()[:32], "transcript ids unchanged"
    french = compute_run_id(outputs, provenance, "translation", transcript, "fr")
    german = compute_run_id(outputs, provenance, "translation", transcript, "de")
    other_source = compute_run_id(outputs, provenance, "translation", "0" * 32, "fr")
    summary = compute_run_id(outputs, provenance, "summary", transcript, None)
    assert len({transcript, french, german, other_source, summary}) == 5


def test_transcript_runs_are_written_as_before_and_old_manifests_read() -> None:
    run = Run(
        run_id="1" * 32,
        provenance=RunProvenance(),
        created_at="2024-01-01T00:00:00Z",
        outputs=[],
        primary_format="srt",
        language="en",
        statement_count=0,
        word_count=0,
        speakers=[],
    )
    written = json.loads(run.model_dump_json())
    assert "kind" not in written and "source_run_id" not in written, "earlier releases can read it"
    assert Run.model_validate(written).kind == "transcript"
    translation = run.model_copy(
        update={"run_id": "2" * 32, "kind": "translation", "source_run_id": "1" * 32}
    )
    assert json.loads(translation.model_dump_json())["kind"] == "translation"
    later = run.model_copy(update={"run_id": "3" * 32})
    manifest = Manifest.model_validate(
        {
            "media_id": "a" * 64,
            "version": 1,
            "previous_version": None,
            "created_at": "2024-01-01T00:00:00Z",
            "change": "ingest",
            "metadata": {},
            "media": {
                "sha256": "a" * 64,
                "size": 1,
                "original_filename": "x.wav",
                "content_type": "audio/wav",
                "probe": {"container": "wav", "duration_seconds": 1.0, "streams": []},
            },
            "runs": [json.loads(r.model_dump_json()) for r in (run, later, translation)],
            "artifacts": [],
        }
    )
    assert manifest.current_run().run_id == "3" * 32, "the latest transcript, not the latest run"
    assert [r.run_id for r in manifest.translations()] == ["2" * 32]
    assert manifest.searchable_translations() == [], "it translates an earlier transcript"
    assert Manifest.from_bytes(manifest.to_bytes()) == manifest


def test_summaries_are_checked_as_text_or_json() -> None:
    validate_summary("summary-markdown", "\ufeff# Notes\r\n\tindented\n".encode(), "notes.md")
    validate_summary("summary-json", b'{"summary": ["a", "b"]}', "notes.json")
    for format_name, data, field in [
        ("summary-markdown", b"x" * (MAX_SUMMARY_BYTES + 1), "size"),
        ("summary-markdown", b" \n\t\n", "(document)"),
        ("summary-markdown", b"ok\nnot \x1b[31m ok\n", "line 2"),
        ("summary-json", b'{"a": NaN}', "(document)"),
        ("summary-json", b'{"a": "\\ud800"}', "a"),
        ("summary-pdf", b"%PDF", "format"),
    ]:
        with pytest.raises(InputError) as caught:
            validate_summary(format_name, data, "notes")
        assert caught.value.field == field, (format_name, data[:20], str(caught.value))


# -- ingest ----------------------------------------------------------------------------------------


def test_translation_and_summary_are_runs_of_their_own(vault: Vault, settings: MediavaultSettings) -> None:
    media_id, transcript = ingest_jfk(vault, settings)
    translated = translate(vault, settings, media_id, transcript)
    summarized = summarize(vault, settings, media_id, transcript)
    assert (translated.manifest_version, summarized.manifest_version) == (2, 3)
    manifest = manifests.latest_manifest(vault, media_id)
    assert manifest.current_run().run_id == transcript, "the translation is not the current transcript"
    translation = manifest.run(translated.run_id)
    assert translation.kind == "translation" and translation.source_run_id == transcript
    assert (translation.language, translation.source_language) == ("fr", "en")
    assert translation.provenance.model == "hand-written" and translation.statement_count == 2
    summary = manifest.run(summarized.run_id)
    assert summary.kind == "summary" and summary.statement_count == 0 and summary.source_run_id == transcript
    assert [r.run_id for r in manifest.summaries()] == [summarized.run_id]
    assert [r.run_id for r in manifest.searchable_translations()] == [translated.run_id]
    kinds = {(a.kind, a.format) for a in manifest.artifacts if a.run_id == translated.run_id}
    assert kinds == {("raw-output", "srt"), ("statements", None), ("words", None)} | {
        (k, None) for k in ("srt", "vtt", "txt")
    }
    raw = next(a for a in manifest.artifacts if a.run_id == translated.run_id and a.kind == "raw-output")
    assert vault.get_bytes(raw.key) == JFK_FR.read_bytes(), "byte-exact"
    summary_objects = [a for a in manifest.artifacts if a.run_id == summarized.run_id]
    assert [(a.kind, a.format, a.key.rsplit("/", 1)[1]) for a in summary_objects] == [
        ("raw-output", "summary-markdown", "summary-markdown.md")
    ]
    assert vault.get_bytes(summary_objects[0].key) == JFK_SUMMARY.read_bytes()
    assert [r.change for r in _journal(vault)] == ["ingest", "new-run", "new-run"]
    again = translate(vault, settings, media_id, transcript)
    assert not again.changed and again.run_id == translated.run_id and again.created_objects == 0


def _journal(vault: Vault):
    from mediavault.vault import journal

    return list(journal.read(vault, 0))


@pytest.mark.parametrize(
    "case,field,message",
    [
        ("unknown source run", "source_run_id", "has no run ffff"),
        ("translation of a translation", "source_run_id", "a translation translates a transcript run"),
        ("summary of a summary", "source_run_id", "is a summary; summarize a transcript"),
        ("no target language", "language", "needs its target language"),
        ("target is the source language", "language", "is the source run's own language"),
        ("language is not a tag", "language", "is not a language tag"),
        ("summary not UTF-8", "byte 2", "is not valid UTF-8 text"),
        ("summary not JSON", "line 1 column 13", "invalid JSON"),
        ("summary with a control character", "line 2", "control character (U+0007"),
        ("summary too large", "outputs[0]", "a summary may have 16,777,216"),
        ("translation in no transcript format", "format", "unknown AI output format"),
        ("translation runs past the media", "segments.end", "is this the output for another file?"),
        ("unknown media", "media_id", "no media item 0000"),
        ("unknown kind", "kind", "unknown run kind 'transcript'"),
    ],
)
def test_bad_input_names_the_field_and_commits_nothing(
    vault: Vault, settings: MediavaultSettings, tmp_path: Path, case: str, field: str, message: str
) -> None:
    media_id, transcript = ingest_jfk(vault, settings)
    translation = translate(vault, settings, media_id, transcript).run_id
    summary = summarize(vault, settings, media_id, transcript).run_id
    before = (manifests.manifest_versions(vault, media_id), stored_keys(vault))
    files = tmp_path / "bad"
    files.mkdir()
    summary_file = files / "notes.md"
    request = RunRequest("summary", [OutputSpec(str(summary_file))], media_id=media_id)
    if case == "summary not UTF-8":
        summary_file.write_bytes(b"# \xff\xfe notes\n")
    elif case == "summary not JSON":
        summary_file = files / "notes.json"
        summary_file.write_text('{"summary": }')
        request.outputs = [OutputSpec(str(summary_file))]
    elif case == "summary with a control character":
        summary_file.write_text("# notes\nbell \x07 here\n")
    elif case == "summary too large":
        with open(summary_file, "wb") as handle:  # sparse: refused by its size, before reading
            handle.truncate(MAX_SUMMARY_BYTES + 1)
    elif case == "summary of a summary":
        summary_file.write_text("# notes\n")
        request.source_run_id = summary
    elif case == "unknown kind":
        request.kind = "transcript"
    else:
        srt = JFK_FR
        if case == "translation in no transcript format":
            srt = files / "fr.md"
            srt.write_text("# pas un sous-titre\n")
        elif case == "translation runs past the media":
            srt = files / "late.srt"
            srt.write_text("1\n00:05:00,000 --> 00:05:01,000\nTrop tard.\n\n")
        source = {
            "unknown source run": "f" * 32,
            "translation of a translation": translation,
        }.get(case, transcript)
        language = {
            "no target language": None,
            "target is the source language": "EN",
            "language is not a tag": "fr ca",
        }
        request = RunRequest(
            "translation",
            [OutputSpec(str(srt))],
            source_run_id=source,
            language=language.get(case, "de"),
            media_id="0" * 64 if case == "unknown media" else media_id,
        )
    if case == "unknown media":
        request.media_id = "0" * 64
    with pytest.raises(InputError) as caught:
        add_run(vault, request, settings)
    assert caught.value.field == field and message in caught.value.message, str(caught.value)
    assert (manifests.manifest_versions(vault, media_id), stored_keys(vault)) == before, "nothing written"


# -- projection, search, export ---------------------------------------------------------------------


def test_round_trip_search_export_and_incremental(
    vault: Vault, settings: MediavaultSettings, tmp_path: Path, mongo_db
) -> None:
    target = IndexTarget(vault, MongoIndexStore(mongo_db), TantivySearchIndex(tmp_path / "tantivy"))
    media_id, transcript = ingest_jfk(vault, settings)
    reindex.full_rebuild(target)
    english = target.search.search(SearchQuery(text="fellow Americans"))
    assert [h.id for h in english.hits] == [f"{media_id}:{transcript}:0"], "transcript ids as before"
    assert target.search.search(SearchQuery(text="compatriotes")).total == 0

    translation = translate(vault, settings, media_id, transcript).run_id
    summary = summarize(vault, settings, media_id, transcript).run_id
    applied = reindex.incremental(target)
    assert applied["records"] == 2 and applied["mode"] == "incremental"

    def hits(text: str, **filters):
        return target.search.search(SearchQuery(text=text, **filters)).hits

    found = hits("compatriotes", language="fr")
    assert [(h.media_id, h.run_id, h.seq, h.start, h.end) for h in found] == [
        (media_id, translation, 0, 0.0, 5.0)
    ]
    second = hits("pouvez")
    assert [(h.media_id, h.run_id, h.start) for h in second] == [(media_id, translation, 5.0)], "its second"
    assert sorted(h.seq for h in hits("demande", language="fr")) == [0, 1], "French stemming: demandez"
    assert hits("compatriotes", language="en") == []
    assert [h.run_id for h in hits("country")] == [transcript], "the English transcript as before"
    assert hits("servir") == [], "a summary is not searched"
    media_doc = target.store.media(media_id)
    runs = {r["run_id"]: r for r in media_doc["runs"]}
    assert runs[translation]["kind"] == "translation" and runs[translation]["searchable"] is True
    assert runs[summary]["kind"] == "summary" and runs[summary]["searchable"] is False
    assert media_doc["current_run"] == transcript and media_doc["counts"]["statements"] == 1

    incremental_state = _search_state(target)
    report = reindex.full_rebuild(target)
    assert report.switched and _search_state(target) == incremental_state, "a rebuild gives the same index"

    srt = export(vault, media_id, "srt", translation)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:05,000\nAinsi donc, mes chers compatriotes")
    assert "2\n00:00:05,000 --> 00:00:11,000\ndemandez ce que vous pouvez" in srt
    assert json.loads(export(vault, media_id, "whisperx-json", translation))["language"] == "fr"
    assert "fellow Americans" in export(vault, media_id, "srt"), "the default is still the transcript"
    assert run_output(vault, media_id, summary).data == JFK_SUMMARY.read_bytes()
    assert run_output(vault, media_id, translation).data == JFK_FR.read_bytes()
    assert export(vault, media_id, "original", summary).encode() == JFK_SUMMARY.read_bytes()
    with pytest.raises(InputError, match="is a summary"):
        export(vault, media_id, "srt", summary)


def test_every_search_backend_takes_translations(
    tmp_path: Path, settings: MediavaultSettings, mongo_db, search_index
) -> None:
    """Translation documents fit the shipped schemas (Tantivy, and Solr's schema.xml)."""
    target = IndexTarget(LocalVault(tmp_path / "vault"), MongoIndexStore(mongo_db), search_index)
    media_id, transcript = ingest_jfk(target.vault, settings)
    translation = translate(target.vault, settings, media_id, transcript).run_id
    report = reindex.full_rebuild(target)
    assert report.switched and report.statements == 3
    found = target.search.search(SearchQuery(text="pouvez", language="fr")).hits
    assert [(h.media_id, h.run_id, h.seq, h.start) for h in found] == [(media_id, translation, 1, 5.0)]
    assert found[0].kind == "translation"
    assert {h.kind for h in target.search.search(SearchQuery(text="ask")).hits} == {"statement"}


def _search_state(target: IndexTarget):
    result = target.search.search(SearchQuery(limit=200, sort="time"))
    return sorted(
        (h.id, h.run_id, h.text, h.start, h.end, h.speaker) for h in result.hits
    ), target.search.summary(target.search.live_generation())


def test_only_the_current_transcript_translations_are_searched(
    vault: Vault, settings: MediavaultSettings
) -> None:
    media_id, first = ingest_jfk(vault, settings)
    old = translate(vault, settings, media_id, first, language="de").run_id
    _, second = ingest_jfk(vault, settings, version="large-v3")
    assert second != first
    earlier = translate(vault, settings, media_id, second, model="first-try").run_id
    latest = translate(vault, settings, media_id, second, model="second-try").run_id
    canadian = translate(vault, settings, media_id, second, language="fr-CA").run_id
    manifest = manifests.latest_manifest(vault, media_id)
    assert manifest.current_run().run_id == second
    assert {r.run_id for r in manifest.searchable_translations()} == {latest, canadian}
    projection, batches = project(vault, media_id)
    documents = [d for batch in batches for d in batch if d["kind"] != "media"]
    by_run: dict[str, list[str]] = {}
    for document in documents:
        by_run.setdefault(document["run_id"], []).append(document["language"])
    assert by_run == {second: ["en"], latest: ["fr", "fr"], canadian: ["fr-CA", "fr-CA"]}
    assert len({d["id"] for d in documents}) == len(documents), "ids never collide"
    searchable = {r["run_id"]: r["searchable"] for r in projection.media_doc["runs"]}
    assert searchable == {
        first: False,
        old: False,
        second: True,
        earlier: False,
        latest: True,
        canadian: True,
    }


def test_a_translation_without_speakers_takes_the_source_speakers(tmp_path: Path, settings) -> None:
    vault = LocalVault(tmp_path / "vault")
    media = make_wav(tmp_path / "board.wav", 300, 330)
    board = ingest(
        vault,
        IngestRequest(
            media=str(media), outputs=[OutputSpec(str(REAL / "whisperx_en_schoolboard_short.json"))]
        ),
        settings,
    )
    translation = translate(vault, settings, board.media_id, board.run_id, path=SCHOOLBOARD_FR).run_id
    edits.add_edit(
        vault, board.media_id, "rename-speaker", {"speaker": "SPEAKER_05", "display_name": "Clerk"}
    )
    _, batches = project(vault, board.media_id)
    documents = [d for batch in batches for d in batch if d["run_id"] == translation]
    assert [(d["start"], d["speaker"], d["speaker_name"]) for d in documents] == [
        (35.06, "SPEAKER_06", "SPEAKER_06"),
        (35.961, "SPEAKER_06", "SPEAKER_06"),
        (42.153, "SPEAKER_06", "SPEAKER_06"),
        (42.393, "SPEAKER_05", "Clerk"),
    ]
    assert {d["language"] for d in documents} == {"fr"} and documents[3]["kind"] == "translation"
    edits.add_edit(vault, board.media_id, "correct-text", {"run_id": translation, "seq": 1, "text": "Merci."})
    _, batches = project(vault, board.media_id)
    fixed = [d["text"] for batch in batches for d in batch if d["run_id"] == translation]
    assert fixed[1] == "Merci.", "text corrections apply to translations too"
    assert "Merci." in export(vault, board.media_id, "vtt", translation)


# -- inbox sidecars --------------------------------------------------------------------------------


def test_inbox_sidecars_commit_with_their_item(tmp_path: Path, settings: MediavaultSettings) -> None:
    vault = LocalVault(tmp_path / "vault")
    folder = tmp_path / "inbox"
    folder.mkdir()
    for source, name in [
        (JFK_MEDIA, "jfk.flac"),
        (JFK_JSON, "jfk.json"),
        (JFK_FR, "jfk.translation.fr.srt"),
        (JFK_SUMMARY, "jfk.summary.md"),
    ]:
        shutil.copyfile(source, folder / name)
    (folder / "jfk.meta.json").write_text(
        json.dumps({"translation": {"provenance": {"model": "nllb-200"}}, "summary": {"language": "en"}})
    )
    (folder / "board.wav").write_bytes(make_wav(tmp_path / "b.wav", 2).read_bytes())
    (folder / "board.summary.md").write_bytes(b"# r\xe9sum\xe9 en latin-1\n")
    items = inbox.discover(str(folder))
    assert [(i.name, sorted(i.translations), len(i.summaries)) for i in items] == [
        ("board", [], 1),
        ("jfk", ["fr"], 1),
    ]
    board, jfk = (inbox.ingest_item(vault, item, {}, settings) for item in items)
    assert not board.ok and "board.summary.md: byte 3: is not valid UTF-8 text" in board.error
    assert jfk.ok and len(jfk.added_runs) == 2
    assert manifests.list_media_ids(vault) == [jfk.media_id], "the bad item committed nothing"
    manifest = manifests.latest_manifest(vault, jfk.media_id)
    assert manifest.version == 1, "one manifest version for the item and its sidecars"
    assert [(r.kind, r.language, r.provenance.model) for r in manifest.runs] == [
        ("transcript", "en", "unknown"),
        ("translation", "fr", "nllb-200"),
        ("summary", "en", "unknown"),
    ]
    assert manifest.runs[1].source_run_id == manifest.runs[2].source_run_id == jfk.run_id


# -- the HTTP API ----------------------------------------------------------------------------------

site = web_site.site  # the fixture: alice's JFK and bob's board meeting, served on loopback


def test_the_api_lists_serves_and_searches_translations(site: Site) -> None:
    vault, settings, media_id = site.vault, site.settings, site.alice_media
    transcript = manifests.latest_manifest(vault, media_id).current_run().run_id
    translation = translate(vault, settings, media_id, transcript).run_id
    summary = summarize(vault, settings, media_id, transcript).run_id
    reindex.incremental(index_target(settings))
    base = f"/api/v1/media/{media_id}"
    with site.client("alice-viewer") as alice, site.client("bob-viewer") as bob:
        detail = alice.get(base).json()
        runs = {r["run_id"]: r for r in detail["runs"]}
        assert detail["current_run"] == transcript and len(runs) == 3
        assert runs[translation] | {"created_at": None} == runs[translation] | {
            "created_at": None,
            "kind": "translation",
            "language": "fr",
            "source_language": "en",
            "source_run_id": transcript,
            "searchable": True,
            "model": "hand-written",
            "version": "1",
            "parameters": {"style": "formal"},
        }
        assert runs[summary]["kind"] == "summary" and runs[summary]["primary_format"] == "summary-markdown"
        french = alice.get(f"{base}/transcript", params={"run": translation}).json()
        assert french["run_id"] == translation and french["language"] == "fr"
        assert [(s["start"], s["text"][:11]) for s in french["statements"]] == [
            (0.0, "Ainsi donc,"),
            (5.0, "demandez ce"),
        ]
        srt = alice.get(f"{base}/export/srt", params={"run": translation})
        assert srt.status_code == 200 and "00:00:05,000 --> 00:00:11,000\ndemandez" in srt.text
        notes = alice.get(f"{base}/output", params={"run": summary})
        assert notes.status_code == 200 and notes.content == JFK_SUMMARY.read_bytes(), "byte-exact"
        assert notes.headers["content-type"] == "text/markdown; charset=utf-8"
        assert "Ask%20not.summary.md" in notes.headers["content-disposition"]
        original = alice.get(f"{base}/output", params={"run": translation, "format": "srt"})
        assert original.content == JFK_FR.read_bytes()
        assert alice.get(f"{base}/output").content == JFK_JSON.read_bytes(), "default: the current transcript"
        refused = alice.get(f"{base}/transcript", params={"run": summary})
        assert refused.status_code == 422 and refused.json()["detail"]["field"] == "run"
        assert f"/output?run={summary}" in refused.json()["error"]
        assert alice.get(f"{base}/export/vtt", params={"run": summary}).status_code == 422
        assert alice.get(f"{base}/output", params={"run": summary, "format": "srt"}).status_code == 422
        assert bob.get(f"{base}/output", params={"run": summary}).status_code == 404, "another owner's"
        hits = alice.get("/api/v1/search", params={"q": "pouvez", "language": "fr"}).json()["hits"]
        assert [(h["media_id"], h["run_id"], h["start"]) for h in hits] == [(media_id, translation, 5.0)]
        assert bob.get("/api/v1/search", params={"q": "pouvez"}).json()["hits"] == []


# -- the CLI (the add-run flow) --------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_cli_adds_shows_and_exports_translations_and_summaries(tmp_path: Path) -> None:
    runner = Runner()
    runner.env = {"MEDIAVAULT_HOME": str(tmp_path / "home"), "MEDIAVAULT_MONGO_MODE": "disabled"}
    ingested = runner.invoke(["ingest", str(JFK_MEDIA), "-o", str(JFK_JSON), "--model", "openai-whisper"])
    assert ingested.exit_code == 0, ingested.output
    media_id = next(word for word in ingested.output.split() if len(word) == 64)
    vault = LocalVault(tmp_path / "home" / "vault")
    transcript = manifests.latest_manifest(vault, media_id).current_run().run_id
    translate_args = ["add-translation", media_id[:10], "--language", "fr", "-o", str(JFK_FR)]
    added = runner.invoke([*translate_args, "--model", "nllb-200", "--param", "beam_size=4"])
    assert added.exit_code == 0, added.output
    assert "translation run" in added.output and "manifest v2" in added.output, added.output
    noted = runner.invoke(
        ["add-summary", media_id[:10], "-o", str(JFK_SUMMARY), "--source-run", transcript[:6]]
    )
    assert noted.exit_code == 0 and "summary run" in noted.output, noted.output
    manifest = manifests.latest_manifest(vault, media_id)
    translation, summary = manifest.runs[1].run_id, manifest.runs[2].run_id
    shown = runner.invoke(["show", media_id[:10]]).output
    assert f"run {transcript} (transcript en, current): openai-whisper" in shown, shown
    assert f"run {translation} (translation en -> fr of {transcript}, searched): nllb-200" in shown
    assert '"beam_size": 4} - 2 statements' in shown
    assert f"run {summary} (summary of {transcript}): unknown" in shown and "summary-markdown, " in shown
    exported = runner.invoke(["export", media_id, "--run", translation, "--format", "srt"])
    assert exported.output.startswith("1\n00:00:00,000 --> 00:00:05,000\nAinsi donc"), exported.output
    original = runner.invoke(["export", media_id, "--run", summary, "--format", "original"])
    assert original.output == JFK_SUMMARY.read_text(), "the summary as it was added"
    summary_args = ["add-summary", media_id, "-o", str(JFK_JSON), "--format", "markdown"]
    for args in (
        [*translate_args, "--source-run", "f" * 32],
        [*translate_args, "--source-run", translation],
        [*summary_args, "--source-run", summary],
    ):
        refused = runner.invoke(args)
        assert refused.exit_code == 2 and ": source_run_id: " in refused.output, refused.output
    assert manifests.manifest_versions(vault, media_id) == [1, 2, 3], "nothing committed"
