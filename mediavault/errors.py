"""Error taxonomy: terminal errors are never retried, transient ones are."""

from __future__ import annotations


class MediavaultError(Exception):
    """Base class for every error mediavault raises on purpose."""


class TerminalError(MediavaultError):
    """An error that will not go away by retrying (bad input, bad configuration)."""


class InputError(TerminalError):
    """Bad user input. Names the file and the field so a person can fix it."""

    def __init__(self, file: str, field: str, message: str) -> None:
        self.file = file
        self.field = field
        self.message = message
        super().__init__(f"{file}: {field}: {message}")


class ConfigurationError(TerminalError):
    """The settings do not describe a usable backend."""


class InsufficientSpace(TerminalError):
    """A local vault or temp directory would run too low on free space."""


class IntegrityError(TerminalError):
    """Stored bytes do not match the checksum recorded for them."""


class MediaForgotten(TerminalError):
    """The media item was erased on request: nothing may be committed for it again."""

    def __init__(self, media_id: str, at: str) -> None:
        super().__init__(
            f"media {media_id} was erased on request on {at}; it cannot be ingested or changed again"
        )
        self.media_id = media_id


class LegalHold(TerminalError):
    """A legal hold blocks the operation."""


class TransientError(MediavaultError):
    """A fault that may go away on retry (network, 5xx, throttling)."""


class ConflictError(TransientError):
    """A concurrent writer won a conditional write; re-read and try again."""


class PreconditionFailed(TerminalError):
    """The caller's expected version (an HTTP If-Match) is no longer the latest: someone else
    changed the item first. Not retried: the caller must look at the new version."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"expected manifest version {expected}, the latest is {current}")
        self.expected, self.current = expected, current


class ObjectsVanished(MediavaultError):
    """Objects a commit was about to reference were removed by garbage collection meanwhile.

    Retrying the commit cannot help; storing them again (create-if-absent), then committing, is
    always safe."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        super().__init__(
            f"{len(keys)} stored object(s) were collected as garbage before the commit "
            f"(first: {keys[0]}); they must be stored again"
        )


def is_transient(exc: BaseException) -> bool:
    """True when retrying the failed operation may succeed."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, TerminalError):
        return False
    try:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            EndpointConnectionError,
            ReadTimeoutError,
        )
    except ImportError:  # pragma: no cover - botocore is a hard dependency
        return False
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | ReadTimeoutError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = exc.response.get("Error", {}).get("Code", "")
        return status >= 500 or code in {"SlowDown", "Throttling", "RequestTimeout"}
    try:
        from pymongo.errors import AutoReconnect, ConnectionFailure
    except ImportError:  # pragma: no cover
        return False
    if isinstance(exc, AutoReconnect | ConnectionFailure):
        return True
    return isinstance(exc, ConnectionError | TimeoutError)


class SourceChanged(TransientError):
    """The input was overwritten after it was validated; ingest it again."""

    def __init__(self, display: str) -> None:
        super().__init__(f"{display}: changed while it was being ingested; run the ingest again")
