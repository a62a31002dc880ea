#!/bin/bash
# Runs inside the virtual kit's root file system (chroot, at the host's native speed):
# what Raspberry Pi OS provides and Debian does not, then the kit installed the way a Pi
# is, with images/install.sh. Arguments: none; /tmp/vm holds this directory, /tmp/vm/kmsxx.tar.gz
# kms++'s source, /tmp/vm/dbusmock.tar.gz python-dbusmock and /opt/callbox/src the callbox source.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
say() { echo "vm recipe: $*"; }

kernel=$(ls /lib/modules | sort -V | tail -1)
update-ca-certificates >/dev/null # with the build machine's own, if it has any

say "kms++ (Pi OS's python3-kms++) from the vendored source"
rm -rf /tmp/kmsxx && mkdir -p /tmp/kmsxx
tar -xzf /tmp/vm/kmsxx.tar.gz -C /tmp/kmsxx --strip-components=1
(cd /tmp/kmsxx && meson setup build --prefix=/usr -Dutils=false -Dpykms=enabled >/dev/null \
	&& ninja -C build >/dev/null && meson install -C build >/dev/null)
ldconfig
# Pi OS puts pykms in dist-packages; meson may pick site-packages: make it importable.
if ! python3 -c 'import pykms' 2>/dev/null; then
	found=$(find /usr/lib /usr/local/lib -path '*pykms/__init__.py' -print -quit)
	[ -n "$found" ] || { echo "pykms was not installed" >&2; exit 1; }
	echo "$(dirname "$(dirname "$found")")" >/usr/lib/python3/dist-packages/kmsxx.pth
fi
python3 -c 'import pykms; print("pykms", pykms.__file__)'

say "gpio-sim for kernel $kernel, built out of tree from linux-source-6.1"
rm -rf /tmp/gpiosim && mkdir -p /tmp/gpiosim
tarball=$(ls /usr/src/linux-source-6.1.tar.xz)
tar -xJf "$tarball" -C /tmp/gpiosim --strip-components=1 --wildcards \
	'*/drivers/gpio/gpio-sim.c' '*/drivers/gpio/gpiolib.h' '*/kernel/irq/irq_sim.c'
mkdir -p /tmp/gpiosim/mod
cp /tmp/gpiosim/drivers/gpio/gpio-sim.c /tmp/gpiosim/drivers/gpio/gpiolib.h /tmp/gpiosim/mod/
objs="gpio-sim.o"
if ! grep -q '^CONFIG_IRQ_SIM=y' "/boot/config-$kernel"; then
	# The kernel lacks the interrupt simulator gpio-sim needs: build it into the module.
	cp /tmp/gpiosim/kernel/irq/irq_sim.c /tmp/gpiosim/mod/
	# irq_to_desc is not exported to modules; the interrupt's handler (handle_simple_irq,
	# set when it is mapped) is what generic_handle_irq calls.
	sed -i 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' \
		/tmp/gpiosim/mod/irq_sim.c
	grep -q 'generic_handle_irq(irqnum);' /tmp/gpiosim/mod/irq_sim.c
	objs="gpio-sim-main.o irq_sim.o"
	mv /tmp/gpiosim/mod/gpio-sim.c /tmp/gpiosim/mod/gpio-sim-main.c
fi
printf 'obj-m := gpio-sim.o\n' >/tmp/gpiosim/mod/Kbuild
if [ "$objs" != gpio-sim.o ]; then printf 'gpio-sim-y := %s\n' "$objs" >>/tmp/gpiosim/mod/Kbuild; fi
make -s -C "/lib/modules/$kernel/build" M=/tmp/gpiosim/mod modules
install -D -m 0644 /tmp/gpiosim/mod/gpio-sim.ko "/lib/modules/$kernel/extra/gpio-sim.ko"
depmod "$kernel"
rm -rf /tmp/gpiosim /tmp/kmsxx /usr/src/linux-source-6.1.tar.xz

say "gpiozero and lgpio at Pi OS Bookworm's versions (Debian has gpiozero 1.6 and no lgpio)"
pip3 install --quiet --break-system-packages --no-cache-dir gpiozero==2.0.1 lgpio==0.2.2.0

say "images/install.sh, as on a Pi"
/opt/callbox/src/images/install.sh --no-start

say "the virtual devices' settings"
cp -a /tmp/vm/rootfs/. /
systemctl enable systemd-networkd.service callbox-vm-devices.service callbox-vm-jack.service \
	vm-bluez.service >/dev/null
systemctl mask bluetooth.service >/dev/null # no radio: the mock BlueZ takes its name

say "python-dbusmock (the mock BlueZ), as the build machine has it"
mkdir -p /opt/callbox-vm/py
tar -xzf /tmp/vm/dbusmock.tar.gz -C /opt/callbox-vm/py
PYTHONPATH=/opt/callbox-vm/py python3 -c 'import dbusmock; print("dbusmock", dbusmock.__version__)'
echo callbox-vm >/etc/hostname
passwd -d root >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/* /root/.cache
