"""The call API in Python: kit "room-a" starts a session, kit "room-b" joins it, room-a
mutes its microphone, and both leave.

    .venv/bin/python examples/call.py

hosts a session server on loopback for the two kits (fake hardware off a Pi). Against a
session server that is already running (`make run`'s, on 127.0.0.1:8090), with an auth token
for each kit (`.venv/bin/callbox users add room-c --name "Room C"` prints one):

    .venv/bin/python examples/call.py --server http://127.0.0.1:8090 \\
        --kit room-c TOKEN_C --kit room-d TOKEN_D
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from appliance.calls import (
    AudioMode,
    Calls,
    CallSettingsBuilder,
    MediaOptions,
    RTCMutedUser,
    RTCUser,
)
from appliance.config import ServerConfig
from appliance.server import SessionServer
from hal.config import HalConfig
from hal.registry import KitIdentity, build_hardware


# README: begin (the README shows what lies between these lines)
class Delegate:
    """Any subset of CallsEventsDelegate; the methods may also be ``async``."""

    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.joined = asyncio.Event()
        self.muted = asyncio.Event()
        self.ended = asyncio.Event()

    def on_user_joined(self, user: RTCUser) -> None:
        print(f"{self.uid}: {user.name} joined")
        self.joined.set()

    def on_user_muted(self, muted: RTCMutedUser) -> None:
        print(f"{self.uid}: {muted.muted.name} {'muted' if muted.is_muted else 'unmuted'}")
        self.muted.set()

    def on_call_ended(self) -> None:
        print(f"{self.uid}: call ended")
        self.ended.set()


@contextlib.asynccontextmanager
async def kit(server_url: str, uid: str, auth_token: str, state: Path) -> AsyncIterator[Calls]:
    """One kit's ``Calls`` on fake hardware ("auto" would take a Pi's real devices), closed
    (its call ended, its connections and devices released) on the way out."""
    hardware = build_hardware(HalConfig(backend="fake"), KitIdentity(uid, uid))
    calls = Calls(
        server_url=server_url,
        uid=uid,
        auth_token=auth_token,
        hardware=hardware,
        options=MediaOptions(recordings_dir=state / uid / "recordings", state_dir=state / uid),
    )
    try:
        yield calls
    finally:
        await calls.close()
        await hardware.close()


async def join(calls: Calls, auth_token: str, session_id: str, delegate: Delegate) -> None:
    call_token = await calls.generate_token(session_id, auth_token)
    settings = (
        CallSettingsBuilder(None, call_token)
        .set_is_audio_only(False)
        .set_default_audio_mode(AudioMode.SPEAKER)
        .set_idle_timeout_period(180)
        .set_delegate(delegate)
        .build()
    )
    await calls.start_session(call_token, settings)
    # README: end


async def call(server_url: str, kits: list[tuple[str, str]], state: Path) -> None:
    (uid_a, token_a), (uid_b, token_b) = kits
    async with (
        kit(server_url, uid_a, token_a, state) as room_a,
        kit(server_url, uid_b, token_b, state) as room_b,
    ):
        delegate_a, delegate_b = Delegate(uid_a), Delegate(uid_b)
        await join(room_a, token_a, "standup", delegate_a)
        await join(room_b, token_b, "standup", delegate_b)
        await asyncio.wait_for(delegate_a.joined.wait(), 20)

        await room_a.mute_audio(True)
        await asyncio.wait_for(delegate_b.muted.wait(), 10)

        # One of two leaving ends the call for the other too (a 1:1 call ends when either
        # side leaves); in a bigger call the others would go on.
        await room_b.end_session()
        await asyncio.wait_for(delegate_a.ended.wait(), 10)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", help="a running session server's URL")
    parser.add_argument(
        "--kit", nargs=2, action="append", metavar=("UID", "TOKEN"), help="twice, with --server"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        if args.server is not None:
            if not args.kit or len(args.kit) != 2:
                parser.error("--server needs --kit UID TOKEN twice")
            await call(args.server, [tuple(k) for k in args.kit], state)
            return
        server = SessionServer(ServerConfig(listen="127.0.0.1:0"), state / "server.db")
        await server.start()
        try:
            kits = [(uid, await server.create_user(uid, uid)) for uid in ("room-a", "room-b")]
            await call(server.url, kits, state)
        finally:
            await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
