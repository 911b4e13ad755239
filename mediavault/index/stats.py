"""Storage metrics from the manifests, read in bulk by DuckDB (no per-object fetches by us).

DuckDB cannot download extensions here, so the httpfs extension for S3 vaults is loaded from the
file the ``duckdb-extension-httpfs`` package ships.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from mediavault.vault.base import Vault
from mediavault.vault.local import LocalVault

MAX_MANIFEST_BYTES = 64 * 1024 * 1024


def _httpfs_path() -> str:
    import duckdb_extension_httpfs

    base = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    candidates = sorted(base.glob("v*/httpfs.duckdb_extension"))
    if not candidates:
        raise FileNotFoundError(f"no httpfs extension file under {base}")
    return str(candidates[-1])


def connect(vault: Vault) -> tuple[duckdb.DuckDBPyConnection, str]:
    """A DuckDB connection able to read the vault, and the glob of every manifest version."""
    con = duckdb.connect()
    if isinstance(vault, LocalVault):
        return con, str(vault.root / "manifests" / "*" / "v*.json")
    from mediavault.vault.s3 import S3Vault

    assert isinstance(vault, S3Vault)
    con.execute(f"LOAD '{_httpfs_path()}'")
    options = vault.options
    secret = options.secret_access_key.get_secret_value() if options.secret_access_key else ""
    endpoint = options.endpoint_url or ""
    use_ssl = not endpoint.startswith("http://")
    host = endpoint.split("://", 1)[-1].rstrip("/") if endpoint else f"s3.{options.region}.amazonaws.com"
    con.execute(
        "CREATE SECRET vault (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE ?, USE_SSL ?)",
        [
            options.access_key_id or "",
            secret,
            options.region,
            host,
            "path" if options.path_style else "vhost",
            use_ssl,
        ],
    )
    return con, f"s3://{vault.bucket}/{vault.prefix}manifests/*/v*.json"


def storage_stats_empty() -> dict[str, Any]:
    return {
        "media": 0,
        "objects": 0,
        "bytes": 0,
        "by_class": [],
        "by_tier": [],
        "by_class_tier": [],
        "growth": [],
        "growth_by_class": [],
        "growth_by_tier": [],
    }


def storage_stats(
    vault: Vault, owner: str | None = None, media_ids: Collection[str] | None = None
) -> dict[str, Any]:
    """Use by artifact class and tier, and growth by month of first ingest (latest manifests);
    with ``owner``, only that owner's media (the owner recorded at ingest); with ``media_ids``,
    only those items (an owner's items as the index knows them, owner edits applied)."""
    if not any(True for _ in vault.list_keys("manifests/")):
        return storage_stats_empty()
    con, pattern = connect(vault)
    source = "'" + pattern.replace("'", "''") + "'"
    con.execute(
        "create temp view latest as select * from "
        f"read_json({source}, format='auto', union_by_name=true, maximum_object_size={MAX_MANIFEST_BYTES}) "
        "qualify row_number() over (partition by media_id order by version desc) = 1"
    )
    scope = "" if owner is None else " where metadata.owner = " + "'" + owner.replace("'", "''") + "'"
    if media_ids is not None:
        con.register("scope_ids", pa.table({"id": pa.array(sorted(media_ids), pa.string())}))
        scope = " where media_id in (select id from scope_ids)"
    con.execute(
        "create temp view artifacts as select media_id, ingested_at, unnest(artifacts) as a from latest"
        + scope
    )

    def rows(sql: str) -> list[dict[str, Any]]:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    totals = rows(
        "select count(distinct media_id) as media, count(*) as objects, "
        "coalesce(sum(a.size), 0) as bytes from artifacts"
    )[0]
    return {
        **{k: int(v) for k, v in totals.items()},
        "by_class": rows(
            "select a.kind as class, count(*) as objects, sum(a.size) as bytes from artifacts "
            "group by all order by bytes desc"
        ),
        "by_tier": rows(
            "select a.tier as tier, count(*) as objects, sum(a.size) as bytes from artifacts "
            "group by all order by tier"
        ),
        "by_class_tier": rows(
            "select a.kind as class, a.tier as tier, count(*) as objects, sum(a.size) as bytes "
            "from artifacts group by all order by class, tier"
        ),
        "growth": rows(
            "select strftime(cast(ingested_at as timestamp), '%Y-%m') as month, "
            "count(distinct media_id) as media, sum(a.size) as bytes from artifacts "
            "group by all order by month"
        ),
        "growth_by_class": rows(
            "select strftime(cast(ingested_at as timestamp), '%Y-%m') as month, a.kind as class, "
            "sum(a.size) as bytes from artifacts group by all order by month, class"
        ),
        "growth_by_tier": rows(
            "select strftime(cast(ingested_at as timestamp), '%Y-%m') as month, a.tier as tier, "
            "sum(a.size) as bytes from artifacts group by all order by month, tier"
        ),
    }
