"""The real picamera2 (pure Python, from PyPI at the version Raspberry Pi OS Bookworm ships as
python3-picamera2), imported off a Pi: the compiled or Pi-only modules it imports
(libcamera's bindings, simplejpeg, prctl, videodev2, pidng, piexif, kms) are stand-ins that
only satisfy the import. The camera doubles are built from its classes, so a name, a
signature or an argument meaning the driver gets wrong fails here as on a kit.

Nothing of picamera2 stays in ``sys.modules``: the driver's own ``import picamera2`` still
fails off a Pi, as it does without python3-picamera2."""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import inspect
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Modules picamera2 imports that exist only on a Pi or are compiled against apt's libraries.
STAND_INS = (
    "libcamera",
    "simplejpeg",
    "prctl",
    "videodev2",
    "v4l2",
    "pidng",
    "piexif",
    "kms",
    "pykms",
    "libarchive",
    "OpenEXR",
    "Imath",
)


class _StandInType(type):
    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _StandInType(name, (_StandIn,), {})


class _StandIn(metaclass=_StandInType):
    """Whatever picamera2 evaluates at import time (``libcamera.Transform()``,
    ``ColorSpace.Sycc()``): an object that is never used for real."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _StandInType(name, (_StandIn,), {})


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = _StandInType(name, (_StandIn,), {})
        setattr(self, name, value)
        return value


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname.split(".")[0] not in STAND_INS:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _StandInModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []


@dataclass(frozen=True)
class RealPicamera2:
    version: str
    Picamera2: Any
    H264Encoder: Any
    Output: Any

    def global_camera_info_over(self, owner: Any) -> Callable[[], list[dict[str, Any]]]:
        """picamera2's own ``Picamera2.global_camera_info``, reading the cameras from
        ``owner._cm.cms.cameras`` (libcamera's CameraManager, faked) instead of the real
        class's camera manager."""
        real = inspect.unwrap(self.Picamera2.__dict__["global_camera_info"].__func__)
        namespace = dict(real.__globals__)
        namespace["Picamera2"] = owner
        return types.FunctionType(real.__code__, namespace, real.__name__)


def _drop(prefixes: tuple[str, ...]) -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in prefixes:
            del sys.modules[name]


@functools.cache
def load_picamera2() -> RealPicamera2:
    before = set(sys.modules)
    finder = _StandInFinder()
    sys.meta_path.insert(0, finder)
    try:
        package = importlib.import_module("picamera2")
        encoders = importlib.import_module("picamera2.encoders")
        outputs = importlib.import_module("picamera2.outputs")
        from importlib.metadata import version

        loaded = RealPicamera2(
            version("picamera2"),
            package.Picamera2,
            encoders.H264Encoder,
            outputs.Output,
        )
    finally:
        sys.meta_path.remove(finder)
        _drop(("picamera2", *STAND_INS))
        for name in set(sys.modules) - before:  # what only picamera2 pulled in
            if name.split(".")[0] in ("picamera2",):
                del sys.modules[name]
    return loaded


# libcamera, faked below picamera2: what CameraManager.cameras gives global_camera_info.
class LibcameraProperty:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"libcamera.properties.{self.name}"


class LibcameraCamera:
    def __init__(self, details: dict[str, Any]) -> None:
        self.id = details["Id"]
        self.properties = {
            LibcameraProperty(key): value
            for key, value in details.items()
            if key in ("Model", "Location", "Rotation")
        }


class LibcameraManager:
    """libcamera's CameraManager as picamera2's CameraManager.cms: the cameras in
    libcamera's order (their position there is picamera2's ``Num``)."""

    def __init__(self, cameras: list[dict[str, Any]]) -> None:
        self.cameras = [LibcameraCamera(details) for details in cameras]


def check_call(real: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Raises TypeError as the real function would for these arguments."""
    inspect.signature(real).bind(*args, **kwargs)
