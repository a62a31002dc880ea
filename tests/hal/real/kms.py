"""pykms, faked over a made-up DRM device, checked against the real pykms: kms++ at the
commit Raspberry Pi OS Bookworm packages as python3-kms++, built by ``make setup-test``
into ``.venv/kmsxx`` from ``../shared/vendor/kmsxx-9ae90ce.tar.gz``.

- Every public name a fake object offers exists on the real class of the same name (the
  fakes are checked when made), so the driver cannot use a name the real module lacks.
- ``AtomicReq.add_connector``/``add_crtc``/``add_plane`` are the real module's own Python
  helpers (pykms/__init__.py), running over the fake ``add``: ``add_crtc`` keeps only the
  mode blob's id, as the real one does.
- A ``Blob`` destroys its property blob when Python drops it (kms++'s ``Blob::~Blob`` calls
  ``drmModeDestroyPropertyBlob``); a commit naming a destroyed blob fails with -EINVAL, as
  the kernel refuses it.
- Dumb framebuffers are shared memory the test reads back.

Real KMS calls need a DRM device, which is not here."""

from __future__ import annotations

import errno
import functools
import importlib
import mmap
import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

KMSXX_BUILD = Path(sys.prefix) / "kmsxx" / "build" / "py"


@functools.cache
def real_pykms() -> types.ModuleType:
    """The real pykms module (needs no DRM device to import); not left importable."""
    if not (KMSXX_BUILD / "pykms" / "__init__.py").exists():
        raise AssertionError(f"no kms++ build in {KMSXX_BUILD}: run `make setup-test`")
    saved = sys.modules.pop("pykms", None)
    sys.path.insert(0, str(KMSXX_BUILD))
    try:
        module = importlib.import_module("pykms")
    finally:
        sys.path.remove(str(KMSXX_BUILD))
        for name in [n for n in sys.modules if n.split(".")[0] == "pykms"]:
            del sys.modules[name]
        if saved is not None:
            sys.modules["pykms"] = saved
    return module


def conform(fake: object, real_name: str) -> None:
    """Refuse a fake offering a public name the real pykms class lacks."""
    real = getattr(real_pykms(), real_name)
    extra = sorted(n for n in dir(fake) if not n.startswith("_") and not hasattr(real, n))
    assert not extra, f"pykms.{real_name} has no {extra}"


@dataclass
class KmsWorld:
    """The made-up DRM device: what the tests set and read."""

    has_atomic: bool = True
    card_error: Exception | None = None
    connected: bool = True
    mode: tuple[int, int] = (1920, 1200)
    refuse_commits: int = 0  # the next commits the driver refuses (-EINVAL)
    blobs: set[int] = field(default_factory=set)  # live property blobs
    next_id: int = 100
    commits: list[dict[str, Any]] = field(default_factory=list)  # accepted commits
    refused: list[str] = field(default_factory=list)
    buffers: list[Any] = field(default_factory=list)
    reserved_connector: list[str] = field(default_factory=list)
    generic_plane_formats: list[Any] = field(default_factory=list)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


def make_pykms(world: KmsWorld) -> types.ModuleType:
    real = real_pykms()

    class DrmObject:
        def __init__(self, card: Any) -> None:
            self.id = world.new_id()
            self.card = card

    class Card:
        def __init__(self, dev_path: str = "") -> None:
            if world.card_error is not None:
                raise world.card_error
            self.has_atomic = world.has_atomic
            conform(self, "Card")

    class Connector(DrmObject):
        fullname = "HDMI-A-1"

        def __init__(self, card: Any) -> None:
            super().__init__(card)
            conform(self, "Connector")

        def connected(self) -> bool:
            return world.connected

        def refresh(self) -> None:
            pass

        def get_default_mode(self) -> Any:
            return Videomode(*world.mode)

    class Crtc(DrmObject):
        def __init__(self, card: Any) -> None:
            super().__init__(card)
            conform(self, "Crtc")

    class Plane(DrmObject):
        def __init__(self, card: Any) -> None:
            super().__init__(card)
            conform(self, "Plane")

    class ResourceManager:
        def __init__(self, card: Any) -> None:
            self._card = card
            conform(self, "ResourceManager")

        def reserve_connector(self, name: str = "") -> Any:
            world.reserved_connector.append(name)
            return Connector(self._card)

        def reserve_crtc(self, connector: Any) -> Any:
            return Crtc(self._card)

        def reserve_generic_plane(self, crtc: Any, format: Any = None) -> Any:
            world.generic_plane_formats.append(format)
            return Plane(self._card)

    class Blob:
        """A DRM property blob: destroyed when Python drops the object."""

        def __init__(self, card: Any, data: bytes) -> None:
            self.id = world.new_id()
            self.card = card
            world.blobs.add(self.id)
            conform(self, "Blob")

        def __del__(self) -> None:
            world.blobs.discard(self.id)

    class Videomode:
        def __init__(self, hdisplay: int, vdisplay: int) -> None:
            self.hdisplay, self.vdisplay = hdisplay, vdisplay
            conform(self, "Videomode")

        def to_blob(self, card: Any) -> Any:
            return Blob(card, b"drm_mode_modeinfo")

    class DumbFramebuffer:
        def __init__(self, card: Any, width: int, height: int, fourcc: str) -> None:
            assert fourcc == "XR24"
            self.id = world.new_id()
            self.card = card
            self.width, self.height = width, height
            self._stride = width * 4 + 64  # drivers pad rows
            self._fd = os.memfd_create("dumb")
            os.ftruncate(self._fd, self._stride * height)
            world.buffers.append(self)
            conform(self, "DumbFramebuffer")

        def fd(self, plane: int) -> int:
            return self._fd

        def stride(self, plane: int) -> int:
            return self._stride

        def _pixels(self) -> np.ndarray[Any, Any]:
            size = self._stride * self.height
            with mmap.mmap(self._fd, size, mmap.MAP_SHARED, mmap.PROT_READ) as m:
                rows = np.frombuffer(m, np.uint8).reshape(self.height, self._stride).copy()
            return rows[:, : self.width * 4].reshape(self.height, self.width, 4)

    class AtomicReq:
        # kms++'s own Python helpers, which call add() below.
        add_connector = real.AtomicReq.add_connector
        add_crtc = real.AtomicReq.add_crtc
        add_plane = real.AtomicReq.add_plane

        def __init__(self, card: Any) -> None:
            self._card = card
            self._props: list[tuple[Any, str, int]] = []
            conform(self, "AtomicReq")

        def add(self, obj: Any, prop: Any, value: int | None = None) -> None:
            items = prop.items() if isinstance(prop, dict) else [(prop, value)]
            for name, v in items:
                assert isinstance(v, int), f"{name}: {v!r} is not a property value"
                self._props.append((obj, name, v))

        def commit_sync(self, allow_modeset: bool = False) -> int:
            props = {(type(o).__name__, name): v for o, name, v in self._props}
            if world.refuse_commits > 0:
                world.refuse_commits -= 1
                world.refused.append("driver")
                return -errno.EINVAL
            mode_id = props.get(("Crtc", "MODE_ID"))
            if mode_id and mode_id not in world.blobs:
                world.refused.append(f"unknown blob {mode_id}")
                return -errno.EINVAL  # drm_property_lookup_blob finds nothing
            if ("Crtc", "MODE_ID") in props and not allow_modeset:
                world.refused.append("modeset not allowed")
                return -errno.EINVAL
            world.commits.append({"allow_modeset": allow_modeset, "props": self._props})
            return 0

    module = types.ModuleType("pykms")
    for cls in (Card, ResourceManager, Connector, Crtc, Plane, Blob, Videomode):
        setattr(module, cls.__name__, cls)
    module.DumbFramebuffer = DumbFramebuffer  # type: ignore[attr-defined]
    module.AtomicReq = AtomicReq  # type: ignore[attr-defined]
    module.PixelFormat = real.PixelFormat  # type: ignore[attr-defined]
    module.world = world  # type: ignore[attr-defined]
    return module


def fake_pykms(monkeypatch: Any, world: KmsWorld | None = None) -> types.ModuleType:
    """The fake, importable as ``pykms`` while the test runs."""
    module = make_pykms(world or KmsWorld())
    monkeypatch.setitem(sys.modules, "pykms", module)
    return module
