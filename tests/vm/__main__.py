"""``make vm``: boot the virtual kit for a person to try; Ctrl-C powers it off."""

from __future__ import annotations

import signal
import sys
import tempfile
from pathlib import Path

from tests.vm import image
from tests.vm.machine import VirtualKit


def main() -> int:
    built = image.ensure()
    with tempfile.TemporaryDirectory(prefix="callbox-vm.") as tmp:
        kit = VirtualKit(built, Path(tmp))
        kit.start()
        try:
            print("booting the virtual kit (emulated CPU: a few minutes)...", flush=True)
            kit.wait_for_agent()
            kit.wait_for_unit()
            config = kit.kit_config()
            scheme = "https" if config.get("api", {}).get("tls", {}).get("enabled") else "http"
            print(
                f"\n  callbox kit {config['kit']['name']!r} is up.\n"
                f"  Web pages and REST API:  {scheme}://127.0.0.1:{kit.api_port}/\n"
                f"  API token:               {config['api']['token']}\n"
                f"  Session server:          127.0.0.1:{kit.server_port}\n"
                f"  The screen:              {scheme}://127.0.0.1:{kit.api_port}"
                "/api/v1/display.mjpeg (with the token), or `screendump FILE.ppm` on the\n"
                "                           QEMU monitor "
                f"(socat - UNIX-CONNECT:{kit.monitor_path})\n"
                f"  Serial console log:      {kit.serial_log}\n\n"
                "  Ctrl-C powers it off.",
                flush=True,
            )
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        except KeyboardInterrupt:
            pass
        finally:
            print("powering off...", flush=True)
            kit.stop()
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main())
