"""Media probing with PyAV (bundled FFmpeg libraries; no system ffmpeg needed)."""

from __future__ import annotations

import av

from mediavault.errors import InputError
from mediavault.models import MediaProbe, StreamInfo
from mediavault.sources import Source

CONTENT_TYPES = {
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "mov,mp4,m4a,3gp,3g2,mj2": "video/mp4",
    "matroska,webm": "video/x-matroska",
    "aac": "audio/aac",
    "avi": "video/x-msvideo",
}


def probe_media(source: Source, field: str = "media") -> MediaProbe:
    """Duration, container and codecs. Raises InputError for anything that is not media."""
    try:
        with source.open_seekable() as stream, av.open(stream, mode="r") as container:
            streams = []
            durations = []
            for s in container.streams:
                if s.type not in ("audio", "video"):
                    continue
                ctx = s.codec_context
                streams.append(
                    StreamInfo(
                        index=s.index,
                        type=s.type,
                        codec=ctx.name if ctx else None,
                        sample_rate=getattr(ctx, "sample_rate", None) if s.type == "audio" else None,
                        channels=getattr(ctx, "channels", None) if s.type == "audio" else None,
                        width=getattr(ctx, "width", None) if s.type == "video" else None,
                        height=getattr(ctx, "height", None) if s.type == "video" else None,
                    )
                )
                if s.duration is not None and s.time_base is not None:
                    durations.append(float(s.duration * s.time_base))
            duration = (
                container.duration / av.time_base if container.duration else max(durations, default=None)
            )
            probe = MediaProbe(container=container.format.name, duration_seconds=duration, streams=streams)
    except av.error.FFmpegError as exc:
        raise InputError(
            source.display, field, f"not a readable audio/video file ({exc.strerror or exc})"
        ) from None
    if not probe.streams:
        raise InputError(source.display, field, "contains no audio or video stream")
    return probe


def content_type_for(probe: MediaProbe) -> str:
    return CONTENT_TYPES.get(probe.container, "application/octet-stream")
