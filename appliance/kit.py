"""The appliance's own behaviour on top of the call API: what the three buttons mean, how
a ringing call becomes a session (as the seed's ringing flow describes), and the LEDs.
The buttons, the REST API and the web pages all act through one KitController."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from appliance.calls import (
    Call,
    Calls,
    CallsError,
    CallSettings,
    SessionState,
)
from appliance.calls.events import CallType
from appliance.events import KitWarning
from appliance.tasks import TaskSet
from hal.buttons.base import ButtonName, Buttons, LedName, LedState, Press

log = logging.getLogger(__name__)


class KitController:
    def __init__(
        self,
        calls: Calls,
        auth_token: str,
        *,
        default_settings: dict[str, Any] | None = None,
        auto_answer: bool = False,
        end_needs_hold: bool = False,
        buttons: Buttons | None = None,
    ) -> None:
        self.calls = calls
        self._auth_token = auth_token
        self._defaults = dict(default_settings or {})
        self.auto_answer = auto_answer
        self.end_needs_hold = end_needs_hold
        self._buttons = buttons
        self._tasks = TaskSet(log, expected=(CallsError,))
        calls.add_call_listener("kit", self)
        self._events_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._buttons is not None:
            self._buttons.start(self.on_button)
            self._events_task = asyncio.create_task(self._follow_leds(), name="leds")

    async def close(self) -> None:
        self.calls.remove_call_listener("kit")
        tasks = [*self._tasks, *([self._events_task] if self._events_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- starting calls ------------------------------------------------------------------

    def settings(self, overrides: dict[str, Any] | None = None, **extra: Any) -> CallSettings:
        """The kit's default settings (config [calls] default_settings), then overrides;
        this controller is the delegate so the end button works as the seed describes."""
        merged = {**self._defaults, **(overrides or {}), **extra}
        return CallSettings.from_dict(merged, delegate=self)

    def set_default_settings(self, settings: dict[str, Any]) -> None:
        """New defaults for the next call (a config change); raises ValueError naming a
        bad setting and keeps the old defaults then."""
        CallSettings.from_dict(settings)
        self._defaults = dict(settings)

    async def start_session(
        self, session_id: str | None = None, overrides: dict[str, Any] | None = None
    ) -> str:
        """Start (or join) a session-only call; returns its session id."""
        settings = self.settings(overrides)  # bad settings fail before anything starts
        session_id = session_id or uuid.uuid4().hex
        token = await self.calls.generate_token(session_id, self._auth_token)
        await self.calls.start_session(token, settings)
        return session_id

    async def place_call(self, receiver: str, call_type: CallType = "video") -> Call:
        return await self.calls.initiate_call(receiver, call_type)

    async def answer(self, session_id: str | None = None) -> Call:
        call = self._ringing_call(session_id, incoming=True)
        accepted = await self.calls.accept_call(call.session_id)
        await self._join(accepted)
        return accepted

    async def decline(self, session_id: str | None = None) -> Call:
        call = self._ringing_call(session_id, incoming=None)
        if call.receiver.uid == self.calls.uid:
            return await self.calls.reject_call(call.session_id)
        return await self.calls.cancel_call(call.session_id)

    def _ringing_call(self, session_id: str | None, *, incoming: bool | None) -> Call:
        call = self.calls.active_call
        if (
            call is None
            or call.status != "initiated"
            or (session_id and call.session_id != session_id)
        ):
            raise CallsError("no-ringing-call", "there is no ringing call to act on")
        if incoming and call.receiver.uid != self.calls.uid:
            raise CallsError("no-ringing-call", "the ringing call is our own outgoing call")
        return call

    async def _join(self, call: Call) -> None:
        token = await self.calls.generate_token(call.session_id, self._auth_token)
        settings = self.settings(is_audio_only=call.call_type == "audio")
        await self.calls.start_session(token, settings)

    async def end(self) -> None:
        """End what is going on: the seed's ringing-flow ending (end_call, then
        clear_active_call and end_session) or a session-only call's end_session."""
        calls = self.calls
        call = calls.active_call
        session = calls.session
        if call is not None and call.status == "initiated" and session is None:
            await self.decline(call.session_id)
            return
        if call is not None and session is not None and call.session_id == session.session_id:
            try:
                await calls.end_call(call.session_id)
            except CallsError as err:  # already ended by the other side
                log.info("end_call: %s", err.message)
            calls.clear_active_call()
        if calls.session is not None:
            await calls.end_session()

    # --- the delegate and the ringing listener -------------------------------------------

    def on_call_end_button_pressed(self) -> None:
        self._tasks.spawn(self.end(), "end call")

    def on_incoming_call_received(self, call: Call) -> None:
        log.info(
            "incoming %s call from %s (%s)", call.call_type, call.initiator.name, call.session_id
        )
        if self.auto_answer:
            self._tasks.spawn(self.answer(call.session_id), "auto-answer")

    def on_outgoing_call_accepted(self, call: Call) -> None:
        self._tasks.spawn(self._join(call), "join accepted call")

    def on_call_ended_message_received(self, call: Call) -> None:
        # The server also ends the session itself (session-ended): ending is idempotent.
        session = self.calls.session
        if session is not None and session.session_id == call.session_id:
            self._tasks.spawn(session.end(), "end ended call")

    # --- buttons -------------------------------------------------------------------------

    def on_button(self, button: ButtonName, press: Press) -> None:
        log.info("button %s (%s)", button.value, press.value)
        self._tasks.spawn(self._act_on_button(button, press), f"button {button.value}")

    async def _act_on_button(self, button: ButtonName, press: Press) -> None:
        calls = self.calls
        session = calls.call_snapshot()
        incoming = (
            calls.active_call is not None
            and calls.active_call.status == "initiated"
            and calls.active_call.receiver.uid == calls.uid
            and session is None
        )
        if button is ButtonName.END:
            if calls.state == SessionState.RINGING:
                await self.decline()  # a short or a long press rejects (or cancels)
            elif calls.state == SessionState.ACTIVE:
                if self.end_needs_hold and press is Press.SHORT:
                    calls.events.emit(
                        KitWarning(
                            code="hold-to-end",
                            device="buttons",
                            message="Hold the end button to leave the call",
                        )
                    )
                else:
                    calls.press_end_call_button()
        elif button is ButtonName.MUTE:
            if incoming:
                await self.answer()  # while ringing, the mute button answers
            elif calls.state == SessionState.ACTIVE and session is not None:
                await calls.mute_audio(not session.audio_muted)
        elif button is ButtonName.PAUSE and calls.state == SessionState.ACTIVE and session:
            await calls.pause_video(not session.video_paused)

    # --- LEDs ----------------------------------------------------------------------------

    async def _follow_leds(self) -> None:
        self._update_leds()
        with self.calls.events.subscribe() as queue:
            while True:
                await queue.get()
                self._update_leds()

    def _update_leds(self) -> None:
        if self._buttons is None:
            return
        state = self.calls.state
        session = self.calls.call_snapshot()
        muted = state == SessionState.ACTIVE and session is not None and session.audio_muted
        self._buttons.set_led(LedName.MUTED, LedState.ON if muted else LedState.OFF)
        self._buttons.set_led(
            LedName.IN_CALL, LedState.ON if state == SessionState.ACTIVE else LedState.OFF
        )
        self._buttons.set_led(
            LedName.RINGING, LedState.BLINK if state == SessionState.RINGING else LedState.OFF
        )
