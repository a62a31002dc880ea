"""Running under systemd: sd_notify(3) (readiness, status, watchdog, stopping) and the
supervision of the daemon's background tasks."""

from appliance.systemd.notify import Notifier, NotifyError
from appliance.systemd.status import describe_call_state
from appliance.systemd.supervisor import BackgroundTaskFailed, Supervisor
from appliance.systemd.watchdog import watchdog_interval

__all__ = [
    "BackgroundTaskFailed",
    "Notifier",
    "NotifyError",
    "Supervisor",
    "describe_call_state",
    "watchdog_interval",
]
