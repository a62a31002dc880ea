"""Tokens that must not open a session, and in-call methods with no call."""

import time

import jwt
import pytest

from appliance.calls import AudioMode, CallsError, CallSettingsBuilder, CallToken
from tests.kits import KitFactory

IN_CALL_METHODS = [
    ("switch_camera", ()),
    ("mute_audio", (True,)),
    ("pause_video", (True,)),
    ("set_audio_mode", (AudioMode.SPEAKER,)),
    ("enter_pip_mode", ()),
    ("exit_pip_mode", ()),
    ("switch_to_video_call", ()),
    ("start_recording", ()),
    ("stop_recording", ()),
    ("end_session", ()),
]


@pytest.mark.parametrize(("method", "args"), IN_CALL_METHODS)
async def test_in_call_methods_need_a_session(
    kits: KitFactory, method: str, args: tuple[object, ...]
) -> None:
    a = await kits("room-a")
    with pytest.raises(CallsError) as err:
        await getattr(a.calls, method)(*args)
    assert err.value.code == "no-active-session"


async def test_refused_tokens_leave_the_kit_idle_with_devices_released(
    kits: KitFactory,
) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    settings = CallSettingsBuilder().build()
    good = await a.calls.generate_token("room-1", a.auth_token)
    other_session = await a.calls.generate_token("room-2", a.auth_token)
    other_user = await b.calls.generate_token("room-1", b.auth_token)
    claims = jwt.decode(good.token, options={"verify_signature": False})
    forged = jwt.encode(claims, "not-the-server-secret-but-32-bytes-long", algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    expired = jwt.encode(
        {**claims, "exp": time.time() - 1},
        "not-the-server-secret-but-32-bytes-long",
        algorithm="HS256",
    )
    cases = {
        "token-invalid": CallToken(forged, "room-1", "room-a", good.expires_at),
        "token-wrong-session": CallToken(other_session.token, "room-1", "room-a", 0),
        "token-wrong-user": other_user,
    }
    for code, token in cases.items():
        with pytest.raises(CallsError) as err:
            await a.calls.start_session(token, settings)
        assert err.value.code == code
        assert a.calls.session is None
        assert a.calls.state.value == "idle"
        assert not a.microphone.is_open
        assert not any(camera.is_open for camera in a.cameras)  # opened during the join
    for raw in (unsigned, expired):
        with pytest.raises(CallsError) as err:
            await a.calls.start_session(CallToken(raw, "room-1", "room-a", 0), settings)
        assert err.value.code == "token-invalid"
    # The good token still works after all that.
    await a.calls.start_session(good, settings)
    assert a.calls.state.value == "active"


async def test_tokens_of_an_ended_session_are_spent(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    settings = CallSettingsBuilder().build()
    token = await a.calls.generate_token("short", a.auth_token)
    await a.calls.start_session(token, settings)
    await b.join("short")
    await a.calls.end_session()
    await b.wait_for("onCallEnded")
    with pytest.raises(CallsError) as err:  # the session is over: its tokens are spent
        await a.calls.start_session(token, settings)
    assert err.value.code == "token-replayed"


async def test_bad_arguments_are_value_errors(kits: KitFactory) -> None:
    a = await kits("room-a")
    with pytest.raises(ValueError, match="call_token"):
        await a.calls.start_session("a string", CallSettingsBuilder().build())  # type: ignore[arg-type]
    token = await a.calls.generate_token("x", a.auth_token)
    with pytest.raises(ValueError, match="settings"):
        await a.calls.start_session(token, {"mode": "single"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="session_id"):
        await a.calls.generate_token("", a.auth_token)
    await a.join("x")
    with pytest.raises(ValueError, match="muted"):
        await a.calls.mute_audio("yes")  # type: ignore[arg-type]
    with pytest.raises(CallsError) as err:
        await a.join("y")
    assert err.value.code == "session-active"
