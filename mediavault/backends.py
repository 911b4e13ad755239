"""Environment wiring in one place: settings in, backends out."""

from __future__ import annotations

from mediavault.errors import ConfigurationError
from mediavault.index import status
from mediavault.index.index_store import MongoIndexStore
from mediavault.index.reindex import IndexTarget
from mediavault.search import SearchIndex
from mediavault.settings import MediavaultSettings
from mediavault.vault import vault_from_settings


def search_from_settings(settings: MediavaultSettings) -> SearchIndex:
    if settings.search_backend == "tantivy":
        from mediavault.search.tantivy_index import TantivySearchIndex

        return TantivySearchIndex(settings.tantivy_path or settings.home / "search" / "tantivy")
    if not settings.solr_url:
        raise ConfigurationError("search_backend is 'solr' but MEDIAVAULT_SOLR_URL is not set")
    from mediavault.search.solr_index import SolrSearchIndex

    auth = None
    if settings.solr_username and settings.solr_password:
        auth = (settings.solr_username, settings.solr_password.get_secret_value())
    return SolrSearchIndex(
        settings.solr_url,
        name=settings.solr_name,
        mode=settings.solr_mode,
        configset=settings.solr_configset,
        timeout=settings.solr_timeout_seconds,
        batch_size=settings.solr_batch_size,
        auth=auth,
    )


def index_target(settings: MediavaultSettings) -> IndexTarget:
    database = status.connect(settings)
    if database is None:
        raise ConfigurationError("the index needs MongoDB: set MEDIAVAULT_MONGO_MODE to embedded or external")
    return IndexTarget(
        vault_from_settings(settings), MongoIndexStore(database), search_from_settings(settings)
    )
