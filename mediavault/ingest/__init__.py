"""Ingest: validate media and AI outputs, store them in the vault, commit a manifest version."""
