"""Retry policy and helpers shared by every task."""

from __future__ import annotations

from typing import Any

from mediavault.errors import is_transient

TRANSIENT_RETRIES = 3
RETRY_DELAYS = [2, 10, 30]


def retry_only_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: retry network/5xx faults, never validation errors."""
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None:
        try:
            state.result()
        except BaseException as exc:
            error = exc
    return error is not None and is_transient(error)


RETRYING = {
    "retries": TRANSIENT_RETRIES,
    "retry_delay_seconds": RETRY_DELAYS,
    "retry_condition_fn": retry_only_transient,
}


def submit_in_windows(task: Any, argument_sets: list[tuple], window: int):
    """Run ``task`` over argument tuples, at most ``window`` at a time; yields results in order."""
    window = max(1, window)
    for start in range(0, len(argument_sets), window):
        futures = [task.submit(*arguments) for arguments in argument_sets[start : start + window]]
        for future in futures:
            yield future.result()
