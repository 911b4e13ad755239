"""Small typed accessors that raise InputError naming the file and the JSON path."""

from __future__ import annotations

import math
from typing import Any

from mediavault.errors import InputError


class FieldChecker:
    def __init__(self, file: str, max_text_chars: int) -> None:
        self.file = file
        self.max_text_chars = max_text_chars

    def fail(self, path: str, message: str) -> InputError:
        return InputError(self.file, path, message)

    def number(self, value: Any, path: str, *, required: bool, non_negative: bool) -> float | None:
        if value is None:
            if required:
                raise self.fail(path, "is required and must be a number")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"must be a number, got {type(value).__name__} {value!r:.40}")
        if not math.isfinite(value):
            raise self.fail(path, f"must be a finite number, got {value!r}")
        if non_negative and value < 0:
            raise self.fail(path, f"must not be negative, got {value!r}")
        return value

    def integer(self, value: Any, path: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"must be an integer, got {type(value).__name__} {value!r:.40}")
        return value

    def text(self, value: Any, path: str, *, required: bool) -> str | None:
        if value is None:
            if required:
                raise self.fail(path, "is required and must be a string")
            return None
        if not isinstance(value, str):
            raise self.fail(path, f"must be a string, got {type(value).__name__} {value!r:.40}")
        if len(value) > self.max_text_chars:
            raise self.fail(
                path,
                f"string of {len(value):,} characters exceeds the limit of "
                f"{self.max_text_chars:,} (limits.max_text_chars)",
            )
        if "\0" in value:
            raise self.fail(path, "contains a NUL character")
        return value

    def time_range(self, start: float | None, end: float | None, path: str) -> None:
        if start is not None and end is not None and end < start:
            raise self.fail(f"{path}.end", f"ends before it starts ({end!r} < start {start!r})")
