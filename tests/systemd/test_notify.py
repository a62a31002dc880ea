"""sd_notify against real datagram sockets: abstract names, paths, and what goes wrong."""

import logging
import secrets
import socket
from pathlib import Path

import pytest

from appliance.systemd import Notifier, NotifyError, watchdog_interval
from appliance.systemd.notify import socket_address


def bound(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_sends_one_datagram_to_an_abstract_socket() -> None:
    name = f"callbox-notify-{secrets.token_hex(6)}"
    with bound("\0" + name) as receiver:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": f"@{name}"})
        assert notifier.enabled
        assert notifier.send("READY=1", "STATUS=Idle")
        assert receiver.recv(4096) == b"READY=1\nSTATUS=Idle"
        notifier.close()


def test_sends_to_a_socket_path(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with bound(str(path)) as receiver:
        notifier = Notifier(str(path))
        assert notifier.send("STOPPING=1")
        assert receiver.recv(4096) == b"STOPPING=1"
        notifier.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert notifier.send("READY=1") is False


@pytest.mark.parametrize("value", ["relative/path", "@", "vsock:2:1234"])
def test_an_unusable_notify_socket_is_a_clear_error(value: str) -> None:
    with pytest.raises(NotifyError, match="NOTIFY_SOCKET"):
        Notifier.from_environ({"NOTIFY_SOCKET": value})


def test_abstract_names_map_to_a_leading_nul() -> None:
    assert socket_address("@x/y") == "\0x/y"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"


def test_a_missing_socket_is_reported_once_not_per_ping(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(tmp_path / "gone"))
    with caplog.at_level(logging.WARNING, logger="appliance.systemd.notify"):
        assert notifier.send("WATCHDOG=1") is False
        assert notifier.send("WATCHDOG=1") is False
    warnings = [r for r in caplog.records if "cannot notify" in r.getMessage()]
    assert len(warnings) == 1
    assert str(tmp_path / "gone") in warnings[0].getMessage()
    notifier.close()


def test_a_line_that_is_not_key_value_is_refused(tmp_path: Path) -> None:
    with bound(str(tmp_path / "s")) as receiver:
        notifier = Notifier(str(tmp_path / "s"))
        with pytest.raises(ValueError, match="KEY=value"):
            notifier.send("READY")
        with pytest.raises(ValueError, match="KEY=value"):
            notifier.send("STATUS=two\nlines")
        receiver.settimeout(0.05)
        with pytest.raises(TimeoutError):
            receiver.recv(4096)  # nothing half-sent
        notifier.close()


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}, pid=42) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "42"}, pid=42) == 0.5


def test_watchdog_meant_for_another_process_or_unset_is_ignored() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "7"}, pid=42) is None
    assert watchdog_interval({}, pid=42) is None


@pytest.mark.parametrize(
    "environ",
    [
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "5", "WATCHDOG_PID": "x"},
    ],
)
def test_bad_watchdog_variables_are_a_clear_error(environ: dict[str, str]) -> None:
    with pytest.raises(NotifyError, match="WATCHDOG_"):
        watchdog_interval(environ, pid=42)
