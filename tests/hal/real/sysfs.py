"""A made-up /sys with the video devices a Pi can have."""

from __future__ import annotations

from pathlib import Path


def video_node(
    root: Path, number: int, name: str, *, driver: str, device: Path, index: int = 0
) -> None:
    node = root / "class" / "video4linux" / f"video{number}"
    node.mkdir(parents=True)
    (node / "name").write_text(name + "\n")
    (node / "index").write_text(f"{index}\n")
    device.mkdir(parents=True, exist_ok=True)
    drivers = root / "bus" / "drivers" / driver
    drivers.mkdir(parents=True, exist_ok=True)
    if not (device / "driver").exists():
        (device / "driver").symlink_to(drivers)
    (node / "device").symlink_to(device)


def pi4_encoder(root: Path) -> None:
    codec = root / "devices" / "platform" / "bcm2835-codec"
    video_node(root, 10, "bcm2835-codec-decode", driver="bcm2835-codec", device=codec)
    video_node(root, 11, "bcm2835-codec-encode", driver="bcm2835-codec", device=codec)


def uvc_camera(
    root: Path, first_node: int, port: str, vendor: str, product: str, name: str
) -> None:
    usb = root / "devices" / "usb1" / port
    usb.mkdir(parents=True)
    (usb / "idVendor").write_text(vendor + "\n")
    (usb / "idProduct").write_text(product + "\n")
    interface = usb / f"{port}:1.0"
    video_node(root, first_node, name, driver="uvcvideo", device=interface)
    video_node(root, first_node + 1, name, driver="uvcvideo", device=interface, index=1)
