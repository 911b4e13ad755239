"""A process-wide progress hook, so a CLI progress bar can follow transfers inside a flow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

ProgressFactory = Callable[[str, int], Callable[[int], None]]
_factory: ProgressFactory | None = None


def set_factory(factory: ProgressFactory | None) -> None:
    global _factory
    _factory = factory


def reporter(description: str, total: int) -> Callable[[int], None] | None:
    """A callback taking byte counts, or None when nobody is watching."""
    return _factory(description, total) if _factory else None


@contextmanager
def watching(factory: ProgressFactory) -> Iterator[None]:
    set_factory(factory)
    try:
        yield
    finally:
        set_factory(None)
