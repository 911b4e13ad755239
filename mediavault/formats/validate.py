"""Small typed accessors that raise InputError naming the file and the JSON path."""

from __future__ import annotations

import math
import re
from typing import Any

from mediavault.errors import InputError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""Segment ids, seeks and tokens are stored as int64 Parquet columns."""
MAX_SPEAKER_CHARS = 200
"""Like speaker display names (edits); speaker labels are indexed as single terms."""
MAX_LANGUAGE_CHARS = 35
"""Like MediaMetadata.language (BCP 47 tags are far shorter); indexed as a single term."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""C0 controls except tab, line feed and carriage return; DEL; C1 controls."""


def control_character(value: str) -> str | None:
    """A description of the first control character in ``value``, or None."""
    match = _CONTROL.search(value)
    if match is None:
        return None
    return f"U+{ord(match.group()):04X} at character {match.start()}"


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
        if isinstance(value, int):
            try:
                float(value)
            except OverflowError:
                raise self.fail(path, f"integer of {value.bit_length()} bits is out of range") from None
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
        if not INT64_MIN <= value <= INT64_MAX:
            raise self.fail(path, f"integer {value!r:.40} is outside the 64-bit range")
        return value

    def integer_list(self, value: Any, path: str) -> list[int] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list of integers, got {type(value).__name__}")
        for index, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int):
                raise self.fail(f"{path}[{index}]", f"must be an integer, got {type(item).__name__}")
            if not INT64_MIN <= item <= INT64_MAX:
                raise self.fail(f"{path}[{index}]", f"integer {item!r:.40} is outside the 64-bit range")
        return value

    def text(self, value: Any, path: str, *, required: bool, max_chars: int | None = None) -> str | None:
        if value is None:
            if required:
                raise self.fail(path, "is required and must be a string")
            return None
        if not isinstance(value, str):
            raise self.fail(path, f"must be a string, got {type(value).__name__} {value!r:.40}")
        limit = max_chars if max_chars is not None else self.max_text_chars
        if len(value) > limit:
            what = "" if max_chars is not None else " (limits.max_text_chars)"
            raise self.fail(path, f"string of {len(value):,} characters exceeds the limit of {limit:,}{what}")
        if "\0" in value:
            raise self.fail(path, "contains a NUL character")
        if (where := control_character(value)) is not None:
            raise self.fail(path, f"contains a control character ({where})")
        return value

    def label(self, value: Any, path: str, max_chars: int) -> str | None:
        """A short single-line value indexed as one term (speaker label, language)."""
        text = self.text(value, path, required=False, max_chars=max_chars)
        if text is not None and ("\n" in text or "\r" in text or "\t" in text):
            raise self.fail(path, "must be a single line without tabs")
        return text

    def time_range(self, start: float | None, end: float | None, path: str) -> None:
        if start is not None and end is not None and end < start:
            raise self.fail(f"{path}.end", f"ends before it starts ({end!r} < start {start!r})")
