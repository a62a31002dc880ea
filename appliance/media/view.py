"""Where a call's video is rendered: the HDMI compositor, or a test's frame sink."""

from __future__ import annotations

from typing import Any, Protocol


class View(Protocol):
    """Where a call is rendered (the HDMI compositor, or a test's frame sink)."""

    def show_video(self, uid: str, frame: Any) -> None:
        """A decoded video frame (av.VideoFrame) from participant ``uid`` (or "local")."""

    def forget(self, uid: str) -> None:
        """Participant ``uid`` has no video any more."""
