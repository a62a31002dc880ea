#!/usr/bin/python3
"""A touch screen for the virtual kit, run in the guest: a uinput device with absolute axes
and BTN_TOUCH, as a USB or DSI touch panel reports. Each line written to the FIFO given as
the first argument, "tap X Y" with X and Y in 0..4095, is a finger down and up there."""

import fcntl
import os
import struct
import sys
import time

UI_SET_EVBIT, UI_SET_KEYBIT, UI_SET_ABSBIT, UI_SET_PROPBIT = (
    0x40045564,
    0x40045565,
    0x40045567,
    0x4004556E,
)
UI_DEV_SETUP, UI_ABS_SETUP, UI_DEV_CREATE = 0x405C5503, 0x401C5504, 0x5501
EV_SYN, EV_KEY, EV_ABS = 0, 1, 3
BTN_TOUCH, ABS_X, ABS_Y, INPUT_PROP_DIRECT = 0x14A, 0, 1, 1
BUS_VIRTUAL, MAXIMUM = 0x06, 4095


def event(fd: int, kind: int, code: int, value: int) -> None:
    now = time.time()
    os.write(fd, struct.pack("llHHi", int(now), int(now % 1 * 1e6), kind, code, value))


def report(fd: int) -> None:
    event(fd, EV_SYN, 0, 0)


def main(fifo: str) -> None:
    fd = os.open("/dev/uinput", os.O_WRONLY | os.O_NONBLOCK)
    for kind in (EV_KEY, EV_ABS):
        fcntl.ioctl(fd, UI_SET_EVBIT, kind)
    fcntl.ioctl(fd, UI_SET_KEYBIT, BTN_TOUCH)
    fcntl.ioctl(fd, UI_SET_PROPBIT, INPUT_PROP_DIRECT)
    for axis in (ABS_X, ABS_Y):
        fcntl.ioctl(fd, UI_SET_ABSBIT, axis)
        # struct uinput_abs_setup: code, then input_absinfo (value, min, max, fuzz, flat, res)
        fcntl.ioctl(fd, UI_ABS_SETUP, struct.pack("Hxx6i", axis, 0, 0, MAXIMUM, 0, 0, 0))
    name = b"Virtual Touch Screen"
    fcntl.ioctl(fd, UI_DEV_SETUP, struct.pack("HHHH80sI", BUS_VIRTUAL, 1, 2, 1, name, 0))
    fcntl.ioctl(fd, UI_DEV_CREATE)
    if not os.path.exists(fifo):
        os.mkfifo(fifo, 0o600)
    while True:
        with open(fifo) as commands:
            for line in commands:
                words = line.split()
                if len(words) != 3 or words[0] != "tap":
                    continue
                x, y = int(words[1]), int(words[2])
                event(fd, EV_ABS, ABS_X, x)
                event(fd, EV_ABS, ABS_Y, y)
                event(fd, EV_KEY, BTN_TOUCH, 1)
                report(fd)
                time.sleep(0.1)
                event(fd, EV_KEY, BTN_TOUCH, 0)
                report(fd)


if __name__ == "__main__":
    main(sys.argv[1])
