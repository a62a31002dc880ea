"""The real camera driver off a Pi: the real picamera2 (from PyPI, over stand-ins for its
Pi-only imports) autospecced for its configuration calls and simulated for streaming, USB
webcams read through PyAV from a lavfi source, sysfs made up."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any
from unittest.mock import call, create_autospec

import av
import numpy as np
import pytest
from pytest_mock import MockerFixture

from hal.camera.base import Camera, CameraError, CameraInfo, EncodingCamera, VideoFormat
from hal.camera.frames import software_format, yuv420_frame
from hal.camera.h264 import NAL_IDR, NAL_PPS, NAL_SPS, nal_types, nal_units, preview_size
from hal.camera.pattern import read_pattern
from hal.camera.real import (
    VIDIOC_S_CTRL,
    PicameraCamera,
    camera_name,
    create,
    find_cameras,
    import_picamera2,
    select,
)
from hal.camera.v4l2 import PyAvCamera, find_uvc_cameras, has_hardware_h264, owned_frame
from hal.config import HalConfig
from hal.errors import HardwareError
from hal.kit import KitIdentity
from tests.hal.real.picamera2_real import load_picamera2
from tests.hal.real.picamera_sim import aligned, force_sim_keyframe, sim_library
from tests.hal.real.sysfs import pi4_encoder, uvc_camera, video_node

KIT = KitIdentity("room-a", "Room A")
VGA = VideoFormat(640, 480, 30)


@pytest.fixture
def picamera2_mock(mocker: MockerFixture) -> Any:
    """picamera2 and its encoders/outputs modules, importable: ``Picamera2`` and
    ``H264Encoder`` autospecced from the real classes (a name or an argument they lack
    fails), the real ``Output``."""
    real = load_picamera2()
    package = types.ModuleType("picamera2")
    encoders = types.ModuleType("picamera2.encoders")
    outputs = types.ModuleType("picamera2.outputs")
    package.Picamera2 = create_autospec(real.Picamera2)  # type: ignore[attr-defined]
    encoders.H264Encoder = create_autospec(real.H264Encoder)  # type: ignore[attr-defined]
    outputs.Output = real.Output  # type: ignore[attr-defined]
    package.encoders, package.outputs = encoders, outputs  # type: ignore[attr-defined]
    mocker.patch.dict(
        sys.modules,
        {"picamera2": package, "picamera2.encoders": encoders, "picamera2.outputs": outputs},
    )
    return package


def pi4_sysfs(root: Path) -> Path:
    pi4_encoder(root)
    uvc_camera(root, 0, "1-1.3", "046d", "0825", "UVC Camera (046d:0825)")
    return root


# --- enumeration and the configuration calls (picamera2 mocked) ---------------------------


def test_without_picamera2_create_names_the_camera_and_the_package(
    mocker: MockerFixture,
) -> None:
    mocker.patch.dict(sys.modules, {"picamera2": None})  # not installed
    with pytest.raises(HardwareError) as raised:
        create(HalConfig(), KIT)
    assert raised.value.device == "camera"
    assert "python3-picamera2" in str(raised.value)


def test_without_picamera2_a_v4l2_camera_named_by_path_is_used(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    # Plain Debian (a PC, the virtual kit): no picamera2, a V4L2 capture device that is not
    # a UVC webcam (vivid), named in the config by its path.
    mocker.patch.dict(sys.modules, {"picamera2": None})  # not installed
    video_node(
        tmp_path, 0, "vivid-000-vid-cap", driver="vivid", device=tmp_path / "devices" / "vivid.0"
    )
    config = HalConfig.model_validate({"camera": {"devices": ["/dev/video0"]}})
    cameras = find_cameras(None, config, sysfs=tmp_path)
    assert [c.info for c in cameras] == [CameraInfo("/dev/video0", "vivid-000-vid-cap", "frames")]
    assert isinstance(cameras[0], PyAvCamera)
    assert select(cameras, ["/dev/video0"]) == cameras
    chosen = create(config, KIT)  # the host's sysfs: the path's name, or the path itself
    assert [c.info.id for c in chosen] == ["/dev/video0"]


@pytest.mark.parametrize(
    ("failure", "cause"),
    [
        # apt's C extensions under a numpy from pip they were not built against
        (
            'raise ValueError("numpy.dtype size changed, may indicate binary incompatibility")',
            "ValueError: numpy.dtype size changed",
        ),
        ('raise AttributeError("_ARRAY_API not found")', "AttributeError: _ARRAY_API not found"),
        ('raise RuntimeError("libcamera: no IPA module")', "RuntimeError: libcamera: no IPA"),
    ],
)
def test_a_picamera2_that_fails_to_import_is_one_clear_camera_error(
    failure: str,
    cause: str,
    tmp_path: Path,
    mocker: MockerFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = tmp_path / "site" / "picamera2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(failure + "\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    mocker.patch.dict(sys.modules)
    for name in [n for n in sys.modules if n.split(".")[0] == "picamera2"]:
        del sys.modules[name]
    with pytest.raises(HardwareError) as raised:
        create(HalConfig(), KIT)
    assert raised.value.device == "camera"
    message = str(raised.value)
    assert "picamera2 cannot be imported" in message
    assert cause in message


def test_a_pi4_lists_csi_cameras_with_hardware_h264_then_usb_webcams(
    picamera2_mock: Any, tmp_path: Path
) -> None:
    picamera2_mock.Picamera2.global_camera_info.return_value = [
        {"Model": "imx708", "Id": "/base/soc/i2c0mux/i2c@1/imx708@1a", "Num": 0},
        {"Model": "ov5647", "Id": "/base/soc/i2c0mux/i2c@0/ov5647@36", "Num": 1},
        {"Model": "uvcvideo", "Id": "/base/scb/pcie@7d500000/pci@0,0/usb@0,0-1.3:1.0-046d:0825"},
    ]
    cameras = find_cameras(import_picamera2(), HalConfig(), sysfs=pi4_sysfs(tmp_path))
    assert [c.info for c in cameras] == [
        CameraInfo("csi0", "Camera Module 3", "h264"),
        CameraInfo("csi1", "Camera Module 1", "h264"),
        CameraInfo("usb-046d:0825", "UVC Camera (046d:0825)", "frames"),
    ]
    assert isinstance(cameras[0], EncodingCamera)
    assert isinstance(cameras[2], PyAvCamera)
    assert select(cameras, ["usb-046d:0825", "csi0"]) == [cameras[2], cameras[0]]
    with pytest.raises(HardwareError, match=r"csi7 \(found: csi0, csi1, usb-046d:0825\)"):
        select(cameras, ["csi7"])
    with pytest.raises(HardwareError, match="no camera found"):
        select([], [])


async def test_pi4_configuration_calls_for_the_hardware_encoder(
    picamera2_mock: Any, tmp_path: Path
) -> None:
    picamera2_mock.Picamera2.global_camera_info.return_value = [
        {"Model": "imx708", "Id": "/base/soc/i2c0mux/i2c@1/imx708@1a", "Num": 0}
    ]
    config = HalConfig.model_validate({"camera": {"keyframe_interval": 45}})
    camera = find_cameras(import_picamera2(), config, sysfs=pi4_sysfs(tmp_path))[0]
    sensor = picamera2_mock.Picamera2.return_value
    sensor.camera_config = {
        "main": {"size": (640, 480), "stride": 640, "format": "YUV420"},
        "lores": {"size": (320, 240), "stride": 320, "format": "YUV420"},
    }
    await camera.open(VGA)
    picamera2_mock.Picamera2.assert_called_once_with(0)
    sensor.create_video_configuration.assert_called_once_with(
        main={"size": (640, 480), "format": "YUV420"},
        lores={"size": (320, 240), "format": "YUV420"},
        controls={"FrameRate": 30},
        encode="main",
        buffer_count=6,
    )
    configuration = sensor.create_video_configuration.return_value
    sensor.align_configuration.assert_called_once_with(configuration)
    sensor.configure.assert_called_once_with(configuration)
    encoders = picamera2_mock.encoders
    encoders.H264Encoder.assert_called_once_with(
        repeat=True, iperiod=45, framerate=30, profile="baseline"
    )
    encoder, output = sensor.start_recording.call_args.args
    assert encoder is encoders.H264Encoder.return_value
    assert isinstance(output, picamera2_mock.outputs.Output)
    assert callable(sensor.post_callback)
    sensor.start.assert_not_called()
    assert camera.is_open
    await camera.close()
    assert sensor.method_calls[-2:] == [call.stop_recording(), call.close()]
    assert not camera.is_open


async def test_pi5_configuration_calls_for_frames(picamera2_mock: Any, tmp_path: Path) -> None:
    picamera2_mock.Picamera2.global_camera_info.return_value = [
        {"Model": "imx219", "Id": "/base/axi/pcie@120000/rp1/i2c@80000/imx219@10", "Num": 0}
    ]
    (tmp_path / "class" / "video4linux").mkdir(parents=True)  # no encoder on a Pi 5
    camera = find_cameras(import_picamera2(), HalConfig(), sysfs=tmp_path)[0]
    assert camera.info == CameraInfo("csi0", "Camera Module 2", "frames")
    sensor = picamera2_mock.Picamera2.return_value
    sensor.camera_config = {"main": {"size": (960, 540), "stride": 960, "format": "YUV420"}}
    await camera.open(VideoFormat(1280, 720, 30))
    # aiortc encodes in software: the size comes down to what a Pi encodes per peer.
    sensor.create_video_configuration.assert_called_once_with(
        main={"size": (738, 414), "format": "YUV420"},
        controls={"FrameRate": 30},
        buffer_count=6,
    )
    sensor.start.assert_called_once_with()
    picamera2_mock.encoders.H264Encoder.assert_not_called()
    await camera.close()
    assert sensor.method_calls[-2:] == [call.stop(), call.close()]


async def test_a_sensor_that_fails_to_start_is_released_and_reported(
    picamera2_mock: Any, tmp_path: Path
) -> None:
    picamera2_mock.Picamera2.global_camera_info.return_value = [{"Model": "imx708", "Num": 0}]
    camera = find_cameras(import_picamera2(), HalConfig(), sysfs=pi4_sysfs(tmp_path))[0]
    sensor = picamera2_mock.Picamera2.return_value
    sensor.configure.side_effect = RuntimeError("Failed to configure")
    with pytest.raises(CameraError, match="csi0: cannot start: Failed to configure"):
        await camera.open(VGA)
    sensor.close.assert_called_once_with()
    assert not camera.is_open


def test_sysfs_finds_uvc_capture_nodes_and_the_pi4_encoder(tmp_path: Path) -> None:
    assert find_uvc_cameras(tmp_path) == []
    assert not has_hardware_h264(tmp_path)
    pi4_sysfs(tmp_path)
    uvc_camera(tmp_path, 2, "1-1.4", "046d", "0825", "UVC Camera (046d:0825)")
    found = find_uvc_cameras(tmp_path)
    assert [(d.path, d.id) for d in found] == [
        ("/dev/video0", "usb-046d:0825"),
        ("/dev/video2", "usb-046d:0825-2"),
    ]
    assert has_hardware_h264(tmp_path)
    assert camera_name("IMX477") == "HQ Camera"
    assert camera_name("ov9281") == "ov9281"


def test_the_key_frame_ioctl_is_vidioc_s_ctrl() -> None:
    # _IOWR('V', 28, struct v4l2_control): read/write, 8-byte argument, type 'V', number 28.
    expected = (3 << 30) | (8 << 16) | (ord("V") << 8) | 28
    assert expected == VIDIOC_S_CTRL


# --- streaming (picamera2 simulated) -----------------------------------------------------


def sim_camera(output: str = "h264", keyframe_interval: int = 600) -> PicameraCamera:
    return PicameraCamera(
        sim_library(),
        0,
        CameraInfo("csi0", "Camera Module 3", output),  # type: ignore[arg-type]
        keyframe_interval=keyframe_interval,
        force_keyframe=force_sim_keyframe,
    )


def decoder() -> av.CodecContext:
    return av.CodecContext.create("h264", "r")


async def test_pi4_camera_gives_pi_style_h264_packets_and_lores_frames() -> None:
    camera = sim_camera(keyframe_interval=10)
    await camera.open(VideoFormat(320, 240, 30))
    try:
        assert camera.format == VideoFormat(320, 240, 30)
        assert camera.preview_format == VideoFormat(320, 240, 30)
        codec = decoder()
        counters, keyframes, sps = [], [], []
        for _ in range(25):
            packet = await camera.read()
            assert isinstance(packet, av.Packet)
            types = nal_types(bytes(packet))
            if packet.is_keyframe:
                assert types[:3] == [NAL_SPS, NAL_PPS, NAL_IDR]  # headers on every key frame
                sps.append(next(nal_units(bytes(packet))))
            else:
                assert NAL_SPS not in types
            keyframes.append(packet.is_keyframe)
            for frame in codec.decode(packet):
                info = read_pattern(frame)
                assert info is not None
                counters.append(info.counter)
        assert keyframes[0]
        assert sum(keyframes) >= 2  # the configured interval, 10 frames
        assert counters == sorted(counters)
        assert len(counters) >= 20
        preview = await camera.read_preview()
        assert (preview.width, preview.height, preview.format.name) == (320, 240, "yuv420p")
        assert read_pattern(preview) is not None
        assert {unit[1] for unit in sps} == {66}  # profile_idc 66: baseline
    finally:
        await camera.close()


async def test_a_requested_key_frame_comes_next() -> None:
    camera = sim_camera(keyframe_interval=600)
    await camera.open(VideoFormat(320, 240, 30))
    try:
        first = await camera.read()
        assert isinstance(first, av.Packet)
        assert first.is_keyframe
        for _ in range(5):
            packet = await camera.read()
            assert isinstance(packet, av.Packet)
            assert not packet.is_keyframe
        camera.request_keyframe()
        later = [await camera.read() for _ in range(4)]
        assert any(isinstance(p, av.Packet) and p.is_keyframe for p in later)
        assert camera.keyframe_requests == 1
    finally:
        await camera.close()


async def test_pi5_camera_gives_frames_without_row_padding() -> None:
    camera = sim_camera(output="frames")
    await camera.open(VideoFormat(320, 240, 30))
    try:
        frame = await camera.read()
        assert isinstance(frame, av.VideoFrame)
        assert (frame.width, frame.height, frame.format.name) == (320, 240, "yuv420p")
        assert read_pattern(frame) is not None
        with pytest.raises(CameraError, match="no preview stream"):
            await camera.read_preview()
        camera.request_keyframe()  # aiortc encodes these frames: nothing to ask
        assert camera.keyframe_requests == 0
    finally:
        await camera.close()


async def test_with_two_cameras_each_id_opens_its_own_sensor(tmp_path: Path) -> None:
    """libcamera numbers the imx219 0 and the imx708 1; picamera2 lists the imx708 first
    and ``Picamera2(n)`` takes a position in that list, not libcamera's number."""
    library = sim_library()
    info = library.picamera2.global_camera_info()
    assert [(c["Model"], c["Num"]) for c in info] == [("imx708", 1), ("imx219", 0)]
    cameras = find_cameras(
        library, HalConfig(), sysfs=pi4_sysfs(tmp_path), force_keyframe=force_sim_keyframe
    )
    csi = [c for c in cameras if isinstance(c, PicameraCamera)]
    assert [c.info.name for c in csi] == ["Camera Module 3", "Camera Module 2"]
    for camera in csi:
        await camera.open(VideoFormat(320, 240, 30))
    try:
        opened = {sensor.model for sensor in library.picamera2.instances}
        assert [s.model for s in library.picamera2.instances] == ["imx708", "imx219"]
        assert opened == {"imx708", "imx219"}
        for camera in csi:
            assert isinstance(await camera.read(), av.Packet)
    finally:
        for camera in csi:
            await camera.close()


async def test_the_sensor_is_released_on_close_and_busy_while_open() -> None:
    library = sim_library()
    info = CameraInfo("csi0", "Camera Module 3", "h264")
    first = PicameraCamera(library, 0, info, keyframe_interval=60)
    second = PicameraCamera(library, 0, info, keyframe_interval=60)
    await first.open(VideoFormat(320, 240, 30))
    with pytest.raises(CameraError, match="in use"):
        await second.open(VideoFormat(320, 240, 30))
    with pytest.raises(CameraError, match="already open"):
        await first.open(VideoFormat(320, 240, 30))
    await first.close()
    await first.close()
    sensor = library.picamera2.instances[0]
    assert sensor.closed
    assert not sensor.started
    with pytest.raises(CameraError, match="not open"):
        await first.read()
    await second.open(VideoFormat(320, 240, 30))  # free again
    assert isinstance(await second.read(), av.Packet)
    await second.close()


async def test_a_stalled_sensor_is_a_camera_error() -> None:
    camera = PicameraCamera(
        sim_library(),
        0,
        CameraInfo("csi0", "Camera Module 3", "frames"),
        keyframe_interval=60,
        stall_seconds=0.3,
    )
    await camera.open(VideoFormat(320, 240, 30))
    await camera.read()
    camera._camera._running.clear()  # the sensor stops delivering
    with pytest.raises(CameraError, match="no picture"):
        await read_until_it_fails(camera)
    await camera.close()


async def read_until_it_fails(camera: Camera) -> None:
    for _ in range(1000):
        await camera.read()


async def test_bad_formats_are_refused() -> None:
    camera = sim_camera()
    for bad in (VideoFormat(321, 240, 30), VideoFormat(32, 24, 30), VideoFormat(640, 480, 0)):
        with pytest.raises(CameraError):
            await camera.open(bad)
    assert not camera.is_open


# --- USB webcams through PyAV -----------------------------------------------------------


def lavfi_camera(source: str) -> PyAvCamera:
    return PyAvCamera(
        CameraInfo("usb-1d6b:0102", "Test webcam"),
        source,
        input_format="lavfi",
        options=lambda fmt: [{}],
        stall_seconds=2.0,
    )


async def test_a_webcam_gives_scaled_yuv420_frames_and_is_released() -> None:
    camera = lavfi_camera("testsrc2=size=640x480:rate=30,realtime")
    await camera.open(VideoFormat(320, 240, 30))
    frames = [await camera.read() for _ in range(5)]
    assert {(f.width, f.height, f.format.name) for f in frames} == {(320, 240, "yuv420p")}
    # testsrc2 moves: consecutive pictures differ, so these are live frames, not one repeated.
    assert not np.array_equal(frames[0].to_ndarray(), frames[-1].to_ndarray())
    thread = camera._thread
    await camera.close()
    assert thread is not None
    assert not thread.is_alive()
    with pytest.raises(CameraError, match="not open"):
        await camera.read()


async def test_a_webcam_that_goes_away_is_a_camera_error() -> None:
    camera = lavfi_camera("testsrc=size=320x240:rate=30:duration=0.2,realtime")
    await camera.open(VideoFormat(320, 240, 30))
    with pytest.raises(CameraError, match="stopped sending"):
        await read_until_it_fails(camera)
    await camera.close()


async def test_a_webcam_that_cannot_open_says_why() -> None:
    camera = PyAvCamera(CameraInfo("usb-0000:0000", "Gone"), "/dev/video63")
    with pytest.raises(CameraError, match="usb-0000:0000: cannot open /dev/video63"):
        await camera.open(VGA)
    assert not camera.is_open


# --- helpers -----------------------------------------------------------------------------


def test_yuv420_buffers_with_padded_rows_become_exact_frames() -> None:
    width, height, stride = 6, 4, 16
    buffer = np.full(stride * height * 3 // 2, 255, np.uint8)
    y = np.arange(width * height, dtype=np.uint8).reshape(height, width)
    u = np.full((2, 3), 100, np.uint8)
    v = np.full((2, 3), 200, np.uint8)
    buffer[: stride * height].reshape(height, stride)[:, :width] = y
    chroma = buffer[stride * height :].reshape(2, 2, stride // 2)
    chroma[0][:, :3], chroma[1][:, :3] = u, v
    frame = yuv420_frame(buffer.reshape(-1, stride), width, height, stride)
    planes = frame.to_ndarray()
    assert np.array_equal(planes[:height], y)
    assert np.array_equal(planes[height:].reshape(-1)[:6], u.reshape(-1))
    assert np.array_equal(planes[height:].reshape(-1)[6:], v.reshape(-1))
    with pytest.raises(ValueError, match="needs"):
        yuv420_frame(buffer[:10], width, height, stride)


def test_sizes() -> None:
    assert software_format(VGA) == VGA
    assert software_format(VideoFormat(1920, 1080, 30)) == VideoFormat(738, 414, 30)
    assert software_format(VideoFormat(960, 540, 15)) == VideoFormat(960, 540, 15)
    assert preview_size(640, 480) == (320, 240)
    assert preview_size(1280, 720) == (320, 180)
    assert preview_size(160, 120) == (160, 120)
    assert aligned(320) == 320


def test_real_cameras_follow_the_protocol() -> None:
    assert isinstance(sim_camera(), Camera)
    assert isinstance(lavfi_camera("testsrc"), Camera)


def test_a_frame_already_at_the_size_and_format_is_copied_into_memory_of_its_own() -> None:
    # A V4L2 frame may sit in a driver buffer that must go back to the device before it
    # closes; PyAV returns such a frame itself when no conversion is needed.
    fmt = VideoFormat(64, 48, 10)
    pixels = np.random.default_rng(1).integers(0, 255, (72, 64), dtype=np.uint8)
    lent = av.VideoFrame.from_ndarray(pixels, format="yuv420p")
    lent.pts = 7
    kept = owned_frame(lent, fmt)
    assert kept is not lent
    assert kept.planes[0].buffer_ptr != lent.planes[0].buffer_ptr
    assert np.array_equal(kept.to_ndarray(), pixels) and kept.pts == 7
    # Any other frame is converted (and so copied) by the scaler.
    rgb = av.VideoFrame.from_ndarray(np.zeros((96, 128, 3), np.uint8), format="rgb24")
    converted = owned_frame(rgb, fmt)
    assert (converted.width, converted.height, converted.format.name) == (64, 48, "yuv420p")
