"""Only holders of a valid call token get into a session's Janus room."""

import asyncio

import jwt
import pytest

from appliance.calls import CallsError, CallSettingsBuilder, CallToken
from appliance.media.janus.api import JanusConnection, JanusError
from appliance.server import SessionServer
from tests.janus.checks import allowed_tokens, join_room
from tests.janus.server import JanusProcess
from tests.kits import KitFactory

UNAUTHORIZED = 433
UNAUTHORIZED_REQUEST = 403  # Janus core: no or wrong api secret
MISSING_ELEMENT = 429


async def test_a_kit_without_a_valid_token_is_kept_out(
    kits: KitFactory, server: SessionServer, janus: JanusProcess
) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    mallory = await kits("room-m")
    await a.join("private")
    await b.join("private")
    await a.wait_for_video_from("room-b", timeout=30)
    session = a.calls.session
    assert session is not None and session.media is not None
    access = session.media.access  # type: ignore[attr-defined]

    # A call token for another session, or one not signed by the server, gets nothing from
    # the session server: no room, no pin, no Janus token.
    elsewhere = await mallory.calls.generate_token("elsewhere", mallory.auth_token)
    claims = jwt.decode(elsewhere.token, options={"verify_signature": False})
    forged = jwt.encode(
        {**claims, "sid": "private"}, "not-the-server-secret-but-32-bytes-long", "HS256"
    )
    for token, code in (
        (CallToken(elsewhere.token, "private", "room-m", 0), "token-wrong-session"),
        (CallToken(forged, "private", "room-m", 0), "token-invalid"),
    ):
        with pytest.raises(CallsError) as refused:
            await mallory.calls.start_session(token, CallSettingsBuilder().build())
        assert refused.value.code == code
        assert mallory.calls.session is None
    assert set(server.janus.rooms["private"].tokens) == {"room-a", "room-b"}  # type: ignore[union-attr]

    # Straight to Janus with the room id (guessed, or overheard) but no valid token: refused,
    # with a guessed token, without one, and without the pin.
    base = {"request": "join", "ptype": "publisher", "room": access.room, "display": "room-m"}
    for attempt, code in (
        ({**base, "pin": access.pin}, UNAUTHORIZED),
        ({**base, "pin": access.pin, "token": "guess"}, UNAUTHORIZED),
        ({**base, "token": access.token}, MISSING_ELEMENT),
        ({**base, "pin": "1234", "token": access.token}, UNAUTHORIZED),
    ):
        with pytest.raises(JanusError) as error:
            await join_room(janus, attempt)
        assert error.value.code == code, attempt
    # Without the API secret (Janus's api_secret) nothing at all is possible.
    stranger = await JanusConnection.open(janus.url)
    try:
        with pytest.raises(JanusError) as error:
            await stranger.create_session()
        assert error.value.code == UNAUTHORIZED_REQUEST
    finally:
        await stranger.close()
    # Subscribing needs a publisher's private id, which only a participant has.
    feed = next(iter(session.media.feeds))  # type: ignore[attr-defined]
    with pytest.raises(JanusError) as error:
        await join_room(
            janus,
            {
                "request": "join",
                "ptype": "subscriber",
                "room": access.room,
                "pin": access.pin,
                "streams": [{"feed": feed}],
            },
        )
    assert error.value.code == UNAUTHORIZED

    # A participant's token is its own and goes when it leaves: b's is refused afterwards.
    b_session = b.calls.session
    assert b_session is not None and b_session.media is not None
    b_token = b_session.media.access.token  # type: ignore[attr-defined]
    assert b_token != access.token
    # (a 1:1 call ends when one side leaves; a third keeps the session going)
    c = await kits("room-c")
    await c.join("private")
    await a.wait_for_video_from("room-c", timeout=30)
    await b.calls.end_session()
    await a.wait_for("onUserLeft", lambda d: d["uid"] == "room-b", timeout=20)
    room = server.janus.rooms["private"]  # type: ignore[union-attr]
    assert "room-b" not in room.tokens
    async with asyncio.timeout(10):  # the room's own list, as Janus keeps it
        while b_token in await allowed_tokens(janus, room.room_id, room.secret):
            await asyncio.sleep(0.05)
    assert access.token in await allowed_tokens(janus, room.room_id, room.secret)
    with pytest.raises(JanusError) as error:
        await join_room(janus, {**base, "pin": access.pin, "token": b_token})
    assert error.value.code == UNAUTHORIZED
