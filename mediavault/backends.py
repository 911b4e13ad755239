"""Environment wiring in one place: settings in, backends out."""

from __future__ import annotations

from mediavault import status
from mediavault.errors import ConfigurationError
from mediavault.index_store import MongoIndexStore
from mediavault.reindex import IndexTarget
from mediavault.search import SearchIndex
from mediavault.settings import MediavaultSettings
from mediavault.vault import vault_from_settings


def search_from_settings(settings: MediavaultSettings) -> SearchIndex:
    if settings.search_backend == "tantivy":
        from mediavault.search.tantivy_index import TantivySearchIndex

        return TantivySearchIndex(settings.tantivy_path or settings.home / "search" / "tantivy")
    raise ConfigurationError(f"search backend {settings.search_backend!r} is not available in this build")


def index_target(settings: MediavaultSettings) -> IndexTarget:
    database = status.connect(settings)
    if database is None:
        raise ConfigurationError("the index needs MongoDB: set MEDIAVAULT_MONGO_MODE to embedded or external")
    return IndexTarget(
        vault_from_settings(settings), MongoIndexStore(database), search_from_settings(settings)
    )
