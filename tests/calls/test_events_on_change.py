"""An event tells of a change: asking for the state the call is already in tells no one."""

import asyncio

from appliance.calls import RTCMutedUser
from tests.kits import KitFactory


class Delegate:
    def __init__(self) -> None:
        self.muted: list[bool] = []

    def on_user_muted(self, user: RTCMutedUser) -> None:
        self.muted.append(user.is_muted)


async def test_the_same_state_twice_tells_once(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    delegate = Delegate()
    await a.join("twice", delegate=delegate)
    await b.join("twice")
    await a.wait_for("onUserJoined")

    await a.calls.mute_audio(True)
    await a.calls.mute_audio(True)
    await a.calls.pause_video(True)
    await a.calls.pause_video(True)
    await a.calls.enter_pip_mode()
    await a.calls.enter_pip_mode()
    await a.calls.mute_audio(False)
    await b.wait_for("onUserMuted", lambda data: data["is_muted"] is False)
    await asyncio.sleep(0.3)

    assert delegate.muted == [True, False]
    assert [e.data["is_muted"] for e in a.named("onUserMuted")] == [True, False]
    assert [e.data["is_paused"] for e in a.named("onUserVideoPaused")] == [True]
    local = [e.data for e in a.named("onLocalStateChanged")]
    assert [s["pip"] for s in local].count(True) == 2  # entering PIP, then unmuting
    assert [e.data["is_muted"] for e in b.named("onUserMuted")] == [True, False]
