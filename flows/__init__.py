"""Prefect flows. They orchestrate; the work is in ``mediavault`` behind thin tasks."""
