"""Lifecycle: retention policies, archive, restore. Nothing is deleted unless a policy says so."""
