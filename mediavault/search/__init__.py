"""Full-text search over speaker statements and media metadata (titles, descriptions, tags): a
Protocol with Tantivy and Solr implementations."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

FACET_FIELDS = ("speaker_name", "media_id", "language", "tags")


class SearchQuery(BaseModel):
    """A search request. ``text`` holds words and "quoted phrases"; all of them must match."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field("", max_length=2000)
    speaker: str | None = Field(None, max_length=200, description="Display name or label.")
    media_id: str | None = Field(None, max_length=64)
    owner: str | None = Field(None, max_length=200)
    language: str | None = Field(None, max_length=35)
    tag: str | None = Field(None, max_length=200, description="One of the media's tags, matched exactly.")
    date_from: datetime | None = None
    date_to: datetime | None = None
    sort: Literal["relevance", "time"] = "relevance"
    limit: int = Field(10, ge=1, le=200)
    offset: int = Field(0, ge=0, le=10_000)
    facets: bool = True
    highlight: bool = True
    media_limit: int = Field(
        5,
        ge=0,
        le=50,
        description="How many media items whose title, description or tags match to list (first page of a "
        "text search only; 0 for none).",
    )

    def wants_media(self) -> bool:
        """Media matches are listed on a text search's first page; a speaker filter excludes them."""
        return bool(self.text.strip()) and self.offset == 0 and self.media_limit > 0 and not self.speaker


class SearchHit(BaseModel):
    id: str
    kind: str = Field("statement", description='"statement", or "translation" (run_id names it)')
    media_id: str
    run_id: str
    seq: int
    start: float
    end: float
    speaker: str
    speaker_name: str
    text: str
    title: str
    tags: list[str] = Field(default_factory=list)
    snippet: str
    score: float


class MediaHit(BaseModel):
    """A media item whose title, description or tags match the words."""

    media_id: str
    title: str
    tags: list[str]
    language: str
    snippet: str
    score: float


class SearchResult(BaseModel):
    total: int
    hits: list[SearchHit]
    facets: dict[str, dict[str, int]] = Field(default_factory=dict)
    media: list[MediaHit] = Field(default_factory=list)


_TOKEN = re.compile(r'"([^"]*)"|(\S+)')


def split_query(text: str) -> tuple[list[str], list[str]]:
    """Split user text into phrases and bare words. Nothing here is interpreted as syntax."""
    phrases, words = [], []
    for phrase, word in _TOKEN.findall(text):
        if phrase.strip():
            phrases.append(phrase.strip())
        elif word:
            words.append(word)
    return phrases, words


@runtime_checkable
class SearchIndex(Protocol):
    """A search backend with generations: build beside the live one, verify, switch, roll back."""

    def create_generation(self, generation: int) -> None: ...

    def add(self, generation: int, documents: list[dict[str, Any]]) -> None: ...

    def delete_media(self, generation: int, media_id: str) -> None: ...

    def commit(self, generation: int) -> None: ...

    def summary(self, generation: int) -> tuple[int, int, int]:
        """(count, digest sum a, digest sum b) of the documents in a generation."""
        ...

    def live_generation(self) -> int | None: ...

    def previous_generation(self) -> int | None:
        """The generation kept for rollback, if any."""
        ...

    def switch(self, generation: int) -> None:
        """Atomically make ``generation`` live; the previous one is kept for rollback."""
        ...

    def rollback(self) -> int: ...

    def drop_generation(self, generation: int) -> None: ...

    def drop_previous(self) -> int | None:
        """Drop the generation kept for rollback (after an erasure: it still holds the item).
        Returns it, or None when there was none; rollback is then refused."""
        ...

    def generations(self) -> list[int]: ...

    def search(self, query: SearchQuery) -> SearchResult: ...

    def destroy(self) -> None:
        """Remove every generation and pointer (a complete wipe; re-index rebuilds it)."""
        ...
