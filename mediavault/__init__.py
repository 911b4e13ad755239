"""mediavault: keep costly AI transcription results safe (the vault) and searchable (the index)."""

SCHEMA_VERSION = 1
"""Version of every manifest, journal record and Parquet file this release writes."""

__version__ = "0.1.0"
