"""hypothesis against the session server's signaling and a kit's signal handling: every
message type with plausible, wrong, missing, extra and extreme fields, any JSON, and text
that is barely JSON. Each frame gets its answer (no crash, no hang, the socket stays open)
while another session's messages are all delivered, in order."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.server import SessionServer
from tests.kits import KitFactory
from tests.reliability.clients import (
    Client,
    numbered_signal,
    pair_in_session,
    sign_in,
    signal_numbers,
)
from tests.reliability.fuzz import LIVE, any_json, field, nested, raw_text, shaped
from tests.server.conftest import ServerFactory

# Plausible values, the ones that get furthest (the fuzzing pair, its session and a live
# token for it) repeated so they come up most.
UIDS = ("partner",) * 4 + ("alice", "bob", "fuzzer", "nobody", "bad uid!", "")
SESSIONS = ("fuzz",) * 4 + ("steady", "elsewhere", "bad id!", "s" * 129, LIVE + "call")
CALL_TOKENS = (LIVE + "call-token",) * 4 + ("x", "a.b.c", "eyJhbGciOiJub25lIn0.e30.")
BOOL = field(True, False)

patch = nested({"muted": BOOL, "video_paused": BOOL, "recording": BOOL})
state = nested({"muted": BOOL, "video_paused": BOOL, "recording": BOOL, "audio_only": BOOL})
description = nested(
    {"type": field("offer", "answer", "pranswer"), "sdp": field("v=0\r\n", "", "\r\n")}
)
candidate = nested(
    {
        "candidate": field("candidate:1 1 udp 2122260223 10.0.0.1 9 typ host", ""),
        "sdpMid": field("0", None, "9" * 65),
        "sdpMLineIndex": field(0, 64, 65, -1),
    }
)
MESSAGES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "hello": shaped({"auth_token": field(LIVE + "auth-token", "wrong"), "client": field("k")}),
    "join": shaped(
        {"session_id": field(*SESSIONS), "call_token": field(*CALL_TOKENS), "state": state}
    ),
    "leave": shaped({}),
    "signal": shaped({"to": field(*UIDS), "description": description}),
    "candidate": shaped({"to": field(*UIDS), "candidate": candidate}),
    "state": shaped({"state": patch}),
    "switch-to-video": shaped({}),
    "call-initiate": shaped(
        {"receiver": field(*UIDS), "call_type": field("audio", "video", "hologram")}
    ),
    **{
        action: shaped({"session_id": field(*SESSIONS)})
        for action in ("call-accept", "call-reject", "call-cancel", "call-end")
    },
    "ping": shaped({}),
}
good_ids = st.integers(min_value=0, max_value=2**53)
ids = st.one_of(
    good_ids, good_ids, good_ids, st.sampled_from([-1, 2**53 + 1, True, "7", 1.5, None])
)


@st.composite
def typed_message(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(MESSAGES)))
    # "candidate" is a signal carrying a candidate rather than a description.
    message = {"type": "signal" if kind == "candidate" else kind, **draw(MESSAGES[kind])}
    if draw(st.booleans()):
        message["id"] = draw(ids)
    return message


# Mostly messages of a real type, so validation passes often enough to reach the logic.
frames = st.sampled_from(["typed"] * 6 + ["json", "text"]).flatmap(
    lambda kind: {
        "typed": typed_message().map(json.dumps),
        "json": any_json.map(json.dumps),
        "text": raw_text(typed_message()),
    }[kind]
)


@dataclass
class Arena:
    server: SessionServer
    http: aiohttp.ClientSession
    fuzzer: Client
    partner: Client
    alice: Client
    bob: Client
    live: dict[str, str]
    ping_ids: itertools.count[int]
    sent: list[int]


@pytest.fixture
async def arena(make_server: ServerFactory) -> AsyncIterator[Arena]:
    # Limits out of the way: this is about content, test_limits.py about volume.
    server = await make_server(limits={"messages_per_second": 100_000, "message_burst": 100_000})
    async with aiohttp.ClientSession() as http:
        alice, bob = await pair_in_session(server, http, "steady", ("alice", "bob"))
        fuzzer, partner = await pair_in_session(server, http, "fuzz", ("fuzzer", "partner"))
        live = {
            "auth-token": fuzzer.auth_token,
            "call-token": server.tokens.issue("fuzzer", "fuzz").token,
            "call": "fuzz",
        }
        sent: list[int] = []

        async def steady() -> None:  # another session, talking all along
            for number in itertools.count():
                await alice.send(numbered_signal("bob", number))
                sent.append(number)
                await asyncio.sleep(0.02)

        talking = asyncio.create_task(steady())
        arena = Arena(server, http, fuzzer, partner, alice, bob, live, itertools.count(), sent)
        try:
            yield arena
        finally:
            talking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await talking
        await other_session_unharmed(arena)


async def other_session_unharmed(arena: Arena) -> None:
    """After all the examples: the other session's every message arrived, in order."""
    sent = list(arena.sent)
    async with asyncio.timeout(10):
        while len(signal_numbers(arena.bob, "alice")) < len(sent):
            await asyncio.sleep(0.02)
    assert signal_numbers(arena.bob, "alice")[: len(sent)] == sent
    assert len(sent) > 20
    for client in (arena.alice, arena.bob):
        assert not client.received("error")
        assert not client.closed.is_set()
    assert [p.uid for p in arena.server.rooms.participants("steady")] == ["alice", "bob"]
    newcomer = await sign_in(arena.http, arena.server.url, "fuzzer", arena.fuzzer.auth_token)
    await newcomer.send({"type": "ping", "id": 1})
    assert (await newcomer.reply(1))["type"] == "pong"


def with_live_values(frame: str, live: dict[str, str]) -> str:
    for name, value in live.items():
        frame = frame.replace(json.dumps(LIVE + name)[1:-1], value)
    return frame


def answer_to(frame: str) -> int | None:
    """The id a frame's answer must carry, when it has a usable one."""
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    value = data.get("id") if isinstance(data, dict) else None
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**53
    return value if ok else None


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frame=frames)
async def test_any_frame_is_answered_and_harms_no_other_session(arena: Arena, frame: str) -> None:
    fuzzer = arena.fuzzer
    # A fresh token each time: one issued before the fuzz session last ended is spent.
    arena.live["call-token"] = arena.server.tokens.issue("fuzzer", "fuzz").token
    frame = with_live_values(frame, arena.live)
    expected = answer_to(frame)
    mark = len(fuzzer.inbox)
    await fuzzer.send(frame)
    probe = 2**53 - next(arena.ping_ids)  # ids a fuzzed frame is unlikely to use
    await fuzzer.send({"type": "ping", "id": probe})
    async with asyncio.timeout(10):  # no hang: the probe right behind it is answered
        while not any(m.get("id") == probe for m in fuzzer.inbox[mark:]):
            assert not fuzzer.closed.is_set(), f"closed ({fuzzer.close_code}) by {frame!r}"
            await asyncio.sleep(0.002)
    answers = fuzzer.inbox[mark:]
    assert {"type": "pong", "id": probe} in answers
    if expected is not None:  # a request with an id got its own answer, before the probe
        replies = [m for m in answers if m.get("id") == expected]
        assert replies, frame
        assert replies[0]["type"] in ("error", "ack", "joined", "call", "pong", "welcome")
    for error in (m for m in answers if m.get("type") == "error"):
        assert error["code"] != "internal", (frame, error)
        assert error["message"]


# --- a kit in a call, and a participant that sends it garbage ---------------------------

signal_payloads = st.fixed_dictionaries(
    {},
    optional={
        "description": st.one_of(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["offer", "answer"]),
                    "sdp": st.one_of(
                        st.text(max_size=300),
                        st.sampled_from(["v=0\r\n", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"]),
                    ),
                }
            ),
        ),
        "candidate": st.fixed_dictionaries(
            {
                "candidate": st.one_of(
                    st.text(max_size=100),
                    st.sampled_from(
                        [
                            "candidate:1 1 udp 2122260223 10.0.0.1 9 typ host",
                            "candidate:1 1 udp x 10.0.0.1 9 typ host",
                            "candidate:",
                        ]
                    ),
                ),
                "sdpMid": st.one_of(st.none(), st.sampled_from(["0", "1", "99"])),
                "sdpMLineIndex": st.one_of(st.none(), st.integers(min_value=0, max_value=64)),
            }
        ),
    },
).filter(lambda signal: signal)


@pytest.fixture
async def rogue_in_a_call(
    kits: KitFactory, server: SessionServer
) -> AsyncIterator[tuple[Any, Any, Client]]:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("meeting")
    await b.join("meeting")
    await a.wait_for_video_from("room-b")
    async with aiohttp.ClientSession() as http:
        token = await server.create_user("rogue", "Rogue")
        rogue = await sign_in(http, server.url, "rogue", token)
        call_token = server.tokens.issue("rogue", "meeting").token
        await rogue.send(
            {"type": "join", "session_id": "meeting", "call_token": call_token, "id": 1}
        )
        assert (await rogue.reply(1))["type"] == "joined"
        yield a, b, rogue


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(signal=signal_payloads)
async def test_a_kit_survives_garbage_signals_from_a_participant(
    rogue_in_a_call: tuple[Any, Any, Client], signal: dict[str, Any]
) -> None:
    a, b, rogue = rogue_in_a_call
    mark = len(rogue.inbox)
    await rogue.send({"type": "signal", "to": "room-a", **signal})
    await rogue.send({"type": "ping", "id": 2})
    async with asyncio.timeout(10):
        while not any(m.get("id") == 2 for m in rogue.inbox[mark:]):
            await asyncio.sleep(0.005)
    assert a.calls.session is not None
    # Still carrying media: b's camera counter advances in a's decoded video, b's tone plays.
    await a.wait_for_video_from("room-b", frames=2)
    await a.wait_to_hear(b.tone_hz)


async def test_after_the_garbage_the_call_goes_on(
    rogue_in_a_call: tuple[Any, Any, Client],
) -> None:
    """The property above runs the garbage; this checks a fresh call's media after a burst
    of the worst of it (an offer that does not parse, candidates for unknown m-lines)."""
    a, b, rogue = rogue_in_a_call
    for signal in (
        {"description": {"type": "offer", "sdp": "v=0\r\nnonsense"}},
        {"description": {"type": "answer", "sdp": "v=0\r\n"}},
        {"candidate": {"candidate": "candidate:1 1 udp x", "sdpMid": "99", "sdpMLineIndex": 64}},
    ):
        await rogue.send({"type": "signal", "to": "room-a", **signal})
    await a.wait_for("onWarning", lambda d: d["code"] == "bad-signal")
    await a.wait_for_video_from("room-b")
    await a.wait_to_hear(b.tone_hz)
    await b.wait_to_hear(a.tone_hz)
    assert not a.named("onCallEnded")
