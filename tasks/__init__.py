"""Thin Prefect tasks over the mediavault domain."""
