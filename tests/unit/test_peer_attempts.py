"""How long a new connection has to carry media: a CPU that needs more than the first
attempt's time to connect gets longer ones, instead of restarting every attempt for good."""

from __future__ import annotations

from appliance.media.peer import ATTEMPT_JITTER, ATTEMPT_TIMEOUT, attempt_timeout


def test_each_connection_that_never_carried_media_doubles_the_next_ones_time_up_to_4x() -> None:
    for unanswered, factor in [(0, 1), (1, 2), (2, 4), (3, 4), (10, 4)]:
        for _ in range(50):
            seconds = attempt_timeout(unanswered)
            low = ATTEMPT_TIMEOUT * factor * (1 - ATTEMPT_JITTER)
            high = ATTEMPT_TIMEOUT * factor * (1 + ATTEMPT_JITTER)
            assert low <= seconds <= high, (unanswered, seconds)
