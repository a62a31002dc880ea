"""The ``callbox`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.config import Config, ConfigError, load_layers
from appliance.logs import setup_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callbox", description="A conferencing appliance.")
    parser.add_argument("--version", action="version", version=f"callbox {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    config_help = "config file (default /etc/callbox/callbox.toml)"
    run = sub.add_parser("run", help="run the appliance daemon")
    run.add_argument("--config", type=Path, help=config_help)
    server = sub.add_parser("server", help="run the session server alone")
    server.add_argument("--config", type=Path, help=config_help)
    users = sub.add_parser("users", help="manage users on the session server")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="create a user and print its auth token")
    add.add_argument("uid")
    add.add_argument("--name", required=True)
    add.add_argument("--avatar")
    add.add_argument("--config", type=Path, help=config_help)
    listing = users_sub.add_parser("list", help="list the users and whether each is online")
    listing.add_argument("--config", type=Path, help=config_help)
    remove = users_sub.add_parser("remove", help="remove a user (its calls stay in the log)")
    remove.add_argument("uid")
    remove.add_argument("--config", type=Path, help=config_help)
    reset = users_sub.add_parser(
        "reset-token", help="give a user a new auth token and print it (the old one stops)"
    )
    reset.add_argument("uid")
    reset.add_argument("--config", type=Path, help=config_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.command in ("run", "server"):
        from appliance.netguard import raise_nofile_limit

        raise_nofile_limit()  # sockets: the servers' limits are per address, not this
    try:
        loaded = load_layers(args.config)
    except ConfigError as err:
        print(f"callbox: bad config: {err}", file=sys.stderr)
        return 2
    config = loaded.config
    try:
        if args.command == "run":
            return asyncio.run(_run(config, loaded.file_layer, loaded.overrides_problem))
        if args.command == "server":
            return asyncio.run(_server(config))
        return asyncio.run(_users(config, args))
    except KeyboardInterrupt:
        return 130


async def _run(
    config: Config, file_layer: dict[str, Any], overrides_problem: str | None = None
) -> int:
    from appliance.calls import CallsError
    from appliance.daemon import Daemon
    from appliance.errors import DaemonError
    from appliance.systemd import BackgroundTaskFailed
    from hal.errors import HardwareError

    try:
        daemon = Daemon(config, base_layer=file_layer, config_problem=overrides_problem)
        await daemon.run()
    except BackgroundTaskFailed as err:  # already logged with its traceback
        logging.getLogger("callbox").error("stopped: %s", err)
        return 1
    except (DaemonError, HardwareError, CallsError, OSError) as err:
        logging.getLogger("callbox").error("cannot start: %s", err)
        return 1
    return 0


async def _server(config: Config) -> int:
    import signal

    from appliance.server import SessionServer
    from appliance.systemd import NotifyError, Supervisor

    log = logging.getLogger("callbox")
    stop = asyncio.Event()
    try:
        supervisor = Supervisor.from_environ(on_failure=stop.set)
    except NotifyError as err:
        log.error("cannot start: %s", err)
        return 1
    config.state_dir.mkdir(parents=True, exist_ok=True)
    tls = None
    if config.server.tls.enabled:
        from appliance.config import split_hostport
        from appliance.tls import TlsError, server_tls

        host = split_hostport(config.server.listen)[0]
        settings = config.server.tls
        try:
            tls = await asyncio.to_thread(
                server_tls, settings.cert, settings.key, config.state_dir, [host]
            )
        except TlsError as err:
            log.error("cannot start: %s", err)
            await supervisor.close()
            return 1
        log.info("TLS certificate SHA-256 %s", tls.fingerprint)
    server = SessionServer(config.server, config.database_path, tls=tls)
    supervisor.start()
    try:
        await server.start()
    except OSError as err:
        log.error("cannot listen on %s: %s", config.server.listen, err)
        await supervisor.close()
        return 1
    log.info("session server listening on %s", server.url)
    from appliance.discovery import Discovery

    discovery: Discovery | None = None
    if config.discovery.enabled:
        discovery = Discovery(list(config.discovery.interfaces) or None)
        if tls is None:
            log.warning("mDNS: the session server is not announced: LAN discovery needs TLS")
        else:
            host = config.discovery.address or _announced_host(config.server.listen)
            await discovery.announce_server(config.kit.uid, host, server.port, tls.fingerprint)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    supervisor.set_status(f"Session server listening on {server.url}")
    supervisor.ready()
    try:
        await stop.wait()
    finally:
        supervisor.stopping()
        try:
            if discovery is not None:
                await discovery.close()
            await server.stop()
        finally:
            await supervisor.close()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    return 1 if supervisor.failure is not None else 0


async def _users(config: Config, args: argparse.Namespace) -> int:
    """``callbox users ...``: the admin side of the configured session server."""
    from appliance.signaling.client import ServerApi, SignalingError
    from appliance.tls import TlsError, client_trust, pinned_file

    admin_key = config.server.admin_key
    key_file = config.database_path.parent / "admin.key"
    if admin_key is None:
        try:
            admin_key = key_file.read_text().strip()
        except OSError:
            print(
                f"callbox: no admin key: set server.admin_key in the config or run this where "
                f"the server keeps {key_file}",
                file=sys.stderr,
            )
            return 2
    server = config.server
    try:
        if server.embedded and server.tls.enabled and not (server.ca_file or server.fingerprint):
            # This kit hosts the server: trust its own (self-signed) certificate, as it does.
            trust = pinned_file(server.tls.cert, config.state_dir)
        else:
            trust = client_trust(server.ca_file, server.fingerprint)
    except TlsError as err:
        print(f"callbox: {err}", file=sys.stderr)
        return 2
    api = ServerApi(config.server.url, trust=trust)
    try:
        match args.users_command:
            case "add":
                print(await api.add_user(admin_key, args.uid, args.name, args.avatar))
            case "reset-token":
                print(await api.reset_token(admin_key, args.uid))
            case "remove":
                await api.remove_user(admin_key, args.uid)
                print(f"removed {args.uid}")
            case _:
                _print_users(await api.admin_users(admin_key))
    except SignalingError as err:
        print(f"callbox: {err.code}: {err.message}", file=sys.stderr)
        return 1
    except OSError as err:
        print(
            f"callbox: cannot reach the session server at {config.server.url} ({err}); "
            "is `callbox run` or `callbox server` running?",
            file=sys.stderr,
        )
        return 1
    finally:
        await api.close()
    return 0


def _print_users(users: list[dict[str, Any]]) -> None:
    """One line per user: uid, online or offline, name (a table that lines up)."""
    rows = [
        (
            _printable(u.get("uid")),
            "online" if u.get("online") is True else "offline",
            _printable(u.get("name")),
        )
        for u in users
    ]
    width = max([len("UID"), *(len(uid) for uid, _, _ in rows)])
    print(f"{'UID':<{width}}  {'STATUS':<7}  NAME")
    for uid, status, name in rows:
        print(f"{uid:<{width}}  {status:<7}  {name}")


def _printable(value: object) -> str:
    """What a server sent, safe for a terminal: no escape sequences or line breaks."""
    return "".join(c if c.isprintable() else "?" for c in str(value or ""))


def _announced_host(listen: str) -> str:
    from appliance.config import split_hostport
    from appliance.discovery import own_address

    host = split_hostport(listen)[0]
    if host in ("", "0.0.0.0", "::", "localhost") or ":" in host:
        return own_address()
    return host
