"""Two kits in a session-only call: real WebRTC between them over loopback."""

from tests.kits import KitFactory


async def test_each_kit_sees_and_hears_the_other(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    await a.join("standup")
    await b.join("standup")

    await a.wait_for_video_from("room-b")
    await b.wait_for_video_from("room-a")
    await a.wait_to_hear(b.tone_hz)
    await b.wait_to_hear(a.tone_hz)

    joined = await a.wait_for("onUserJoined", lambda d: d["uid"] == "room-b")
    assert joined.data["name"] == "Room B"
    listed = await b.wait_for("onUserListChanged")
    assert {u["uid"] for u in listed.data["users"]} == {"room-a", "room-b"}
