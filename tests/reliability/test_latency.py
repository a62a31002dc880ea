"""Audio latency after a stall: the receive buffer gives back the delay a burst left in it
(the soak, bench/soak.py, found it kept it for the rest of the call), and never the margin
that jitter needs."""

import numpy as np

from appliance.media.remote import TRIM_WINDOW, JitterBuffer
from hal.audio.base import FRAME_SAMPLES

BLOCK = FRAME_SAMPLES


def numbered(start: int) -> np.ndarray:
    """A block whose samples count up from ``start``: what comes out tells what was kept."""
    return (np.arange(start, start + BLOCK) % 30_000).astype(np.int16)


def test_a_burst_after_a_stall_is_trimmed_back_to_one_block() -> None:
    buffer = JitterBuffer()
    sent = 0

    def put(blocks: int) -> None:
        nonlocal sent
        for _ in range(blocks):
            buffer.put(numbered(sent))
            sent += BLOCK

    put(2)
    played = []
    for _ in range(50):  # steady: one block in, one out
        played.append(buffer.take(BLOCK))
        put(1)
    queued_steady = sent - sum(len(p) for p in played if p is not None)

    put(6)  # a 120 ms stall, then everything at once (under the 200 ms cap)
    for _ in range(2 * TRIM_WINDOW):
        played.append(buffer.take(BLOCK))
        put(1)
    queued_after = sent - sum(len(p) for p in played if p is not None) - buffer.trimmed

    assert buffer.trimmed == 6 * BLOCK  # the stall's delay, given back
    assert queued_after == queued_steady == 2 * BLOCK
    last = played[-1]
    assert last is not None
    # What played last was the oldest of the two blocks then queued, as before the stall:
    # the samples trimmed were the oldest.
    assert int(last[0]) == (sent - BLOCK - 2 * BLOCK) % 30_000


def test_jitter_keeps_its_margin() -> None:
    buffer = JitterBuffer()
    buffer.put(numbered(0))
    buffer.put(numbered(BLOCK))
    trimmed_by_window = []
    for tick in range(5 * TRIM_WINDOW):
        # Arrivals come in pairs every other tick: 20 ms of jitter, on average on time.
        if tick % 2 == 0:
            buffer.put(numbered(0))
            buffer.put(numbered(0))
        assert buffer.take(BLOCK) is not None  # never short: the margin stays
        if tick % TRIM_WINDOW == TRIM_WINDOW - 1:
            trimmed_by_window.append(buffer.trimmed)
    # At most the one block of the start's prebuffer that jitter never needed, once.
    assert trimmed_by_window[0] <= BLOCK
    assert len(set(trimmed_by_window)) == 1
