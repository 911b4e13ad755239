"""Media probing with PyAV (bundled FFmpeg libraries; no system ffmpeg needed)."""

from __future__ import annotations

import av

from mediavault.errors import InputError
from mediavault.ingest.sources import Source
from mediavault.vault.models import MediaProbe, StreamInfo

FRAME_PROBE_PACKETS = 64
"""Packets read looking for a first decodable frame; a probe never reads the whole file."""

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
            frames = _frame_evidence(container) if streams else "decoded"
    except av.error.FFmpegError as exc:
        raise InputError(
            source.display, field, f"not a readable audio/video file ({exc.strerror or exc})"
        ) from None
    if not probe.streams:
        raise InputError(source.display, field, "contains no audio or video stream")
    if frames == "none":
        raise InputError(source.display, field, "has a header but no audio or video frames (nothing to play)")
    if frames == "undecodable" and not probe.duration_seconds:
        raise InputError(
            source.display,
            field,
            f"has no duration and none of its first {FRAME_PROBE_PACKETS} packets decodes to a frame",
        )
    return probe


def _frame_evidence(container: av.container.InputContainer) -> str:
    """'decoded' once a frame decodes; 'undecodable' when packets carry data but none of the first
    FRAME_PROBE_PACKETS decodes (a codec without decoder, or a slow one); 'none' for no data at
    all, like a WAV whose header announces no frames."""
    streams = [s for s in container.streams if s.type in ("audio", "video")]
    with_data = 0
    for packet in container.demux(*streams):
        if packet.size:
            with_data += 1
        try:
            if packet.decode():
                return "decoded"
        except av.error.FFmpegError:
            pass
        if with_data >= FRAME_PROBE_PACKETS:
            break
    return "undecodable" if with_data else "none"


def content_type_for(probe: MediaProbe) -> str:
    return CONTENT_TYPES.get(probe.container, "application/octet-stream")
