"""``python -m tests.reliability.network.impaired_kit run --config FILE``: ``callbox`` with
the datagram impairment of ``impair.py`` installed first, following the JSON file named by
``CALLBOX_TEST_IMPAIRMENT`` (a test changes it while the kit runs). Everything else is the
product's own command line, unchanged."""

import os
import sys
from pathlib import Path

from tests.reliability.network.impair import ENVIRONMENT, install_from_file

if __name__ == "__main__":
    settings = os.environ.get(ENVIRONMENT)
    if settings:
        install_from_file(Path(settings))
    from appliance.cli import main

    sys.exit(main())
