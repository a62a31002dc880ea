"""A three-kit mesh: everyone sees and hears everyone; one leaves, the call goes on."""

import asyncio

import numpy as np

from tests.kits import Kit, KitFactory


def tone_levels(kit: Kit, tones: list[float]) -> list[float]:
    """Spectral magnitude (dB over the median bin) at each tone in what the kit played."""
    pcm = kit.output().recent(0.5).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    freqs = np.fft.rfftfreq(len(pcm), 1 / 48_000)
    floor = float(np.median(spectrum)) + 1e-9
    return [
        20 * np.log10(spectrum[(freqs > hz - 10) & (freqs < hz + 10)].max() / floor) for hz in tones
    ]


async def test_three_kits_mesh(kits: KitFactory) -> None:
    a = await kits("room-a")
    b = await kits("room-b")
    c = await kits("room-c")
    for kit in (a, b, c):
        await kit.join("all-hands")
    for kit in (a, b, c):
        for other in (a, b, c):
            if other is not kit:
                await kit.wait_for_video_from(other.uid, timeout=20)
    for kit, others in ((a, [b, c]), (b, [a, c]), (c, [a, b])):
        async with asyncio.timeout(10):  # both tones stand well above the floor
            while min(tone_levels(kit, [o.tone_hz for o in others])) < 30:
                await asyncio.sleep(0.1)
        # A kit does not hear itself: its own tone is far below the others'.
        others_level = min(tone_levels(kit, [o.tone_hz for o in others]))
        assert tone_levels(kit, [kit.tone_hz])[0] < others_level - 25

    mark_a, mark_b = len(a.events), len(b.events)
    await c.calls.end_session()
    for kit, mark in ((a, mark_a), (b, mark_b)):
        left = await kit.wait_for("onUserLeft", after=mark)
        assert left.data["uid"] == "room-c"
        users = await kit.wait_for("onUserListChanged", after=mark)
        assert {u["uid"] for u in users.data["users"]} == {"room-a", "room-b"}
    assert not a.named("onCallEnded")  # the call goes on for the two left
    await a.wait_for_video_from("room-b")
    await b.wait_to_hear(a.tone_hz)
