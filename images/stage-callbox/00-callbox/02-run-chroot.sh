#!/bin/bash -e
# Inside the image (pi-gen feeds this to bash in the chroot): the callbox user, the venv,
# the units enabled, config.txt. The Debian packages came from 00-packages-nr; nothing is
# started here (no systemd runs in the chroot); the config and API token are made on the
# kit's first boot.
/opt/callbox/src/images/install.sh --no-apt --no-start
