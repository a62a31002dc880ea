"""The call-session API: ``from appliance.calls import Calls, CallSettingsBuilder, ...``"""

from appliance.calls.calls import Calls
from appliance.calls.errors import CallsError
from appliance.calls.events import (
    Call,
    CallEvent,
    CallListener,
    CallsEventsDelegate,
    CallSwitchRequestInfo,
    CallUser,
    RTCMutedUser,
    RTCRecordingInfo,
    RTCUser,
    RTCVideoPausedUser,
)
from appliance.calls.session import MediaOptions, SessionState
from appliance.calls.settings import (
    AudioMode,
    AvatarMode,
    CallSettings,
    CallSettingsBuilder,
    CallToken,
    DisplayMode,
    View,
)

__all__ = [
    "AudioMode",
    "AvatarMode",
    "Call",
    "CallEvent",
    "CallListener",
    "CallSettings",
    "CallSettingsBuilder",
    "CallSwitchRequestInfo",
    "CallToken",
    "CallUser",
    "Calls",
    "CallsError",
    "CallsEventsDelegate",
    "DisplayMode",
    "MediaOptions",
    "RTCMutedUser",
    "RTCRecordingInfo",
    "RTCUser",
    "RTCVideoPausedUser",
    "SessionState",
    "View",
]
