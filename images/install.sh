#!/bin/bash
# Turn a Raspberry Pi OS (Bookworm, 64-bit) system into a callbox kit, or (--root) set
# up the root file system of an image. Safe to run again: it updates what it installed.
#
#   sudo images/install.sh                   # on the Pi, from a checkout of callbox
#   images/install.sh --root DIR --no-venv   # into an image's root, without running it
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
PACKAGES_FILE="$HERE/stage-callbox/00-callbox/00-packages-nr"
CONFIG_TXT_BLOCK="$HERE/config.txt"
BEGIN_MARK="# >>> callbox >>>"
END_MARK="# <<< callbox <<<"
PREFIX=/opt/callbox
VENV=$PREFIX/venv

usage() {
	cat <<'EOF'
Usage: install.sh [options]
Installs callbox: Debian packages, the callbox user, /opt/callbox/venv (with system site
packages, for picamera2, libcamera and kms++ from apt), the systemd units, config.txt
settings for the camera and HDMI, and the first-boot step that writes the config and
shows the API token on the screen.

  --root DIR   install into the system under DIR instead of /: no apt, no venv, nothing
               started (to build the venv, run install.sh inside DIR with chroot, as
               the image build does)
  --role ROLE  kit (default: the appliance) or server (the session server alone)
  --no-apt     do not install Debian packages (an image build installs them itself)
  --no-venv    do not build /opt/callbox/venv
  --no-start   do not run the first-boot step or start the service now
  -h, --help   this text
EOF
}

say() { echo "install.sh: $*"; }
die() {
	echo "install.sh: $*" >&2
	exit 1
}

ROOT=/
ROLE=kit
APT=1
VENV_STEP=1
START=1
while [ $# -gt 0 ]; do
	case "$1" in
	--root)
		[ $# -ge 2 ] || die "--root needs a directory"
		ROOT=$2
		shift 2
		;;
	--role)
		[ $# -ge 2 ] || die "--role needs kit or server"
		ROLE=$2
		shift 2
		;;
	--no-apt) APT=0 && shift ;;
	--no-venv) VENV_STEP=0 && shift ;;
	--no-start) START=0 && shift ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		die "unknown argument: $1"
		;;
	esac
done

case "$ROLE" in
kit) SERVICE=callbox.service ;;
server) SERVICE=callbox-server.service ;;
*) die "--role $ROLE: expected kit or server" ;;
esac
[ -d "$ROOT" ] || die "--root $ROOT: no such directory"
ROOT=$(cd "$ROOT" && pwd)
if [ "$ROOT" = / ]; then
	[ "$(id -u)" = 0 ] || die "run as root (sudo), or give --root DIR"
	R=""
else
	R=$ROOT # prefix for every path we write
	APT=0
	START=0
	if [ "$VENV_STEP" = 1 ]; then
		say "--root: not building $VENV (run install.sh inside $ROOT to build it)"
		VENV_STEP=0
	fi
fi
if [ ! -f "$SRC/pyproject.toml" ] || [ ! -d "$SRC/appliance" ]; then
	die "$SRC is not a callbox source tree"
fi

packages() {
	sed -e 's/#.*//' "$PACKAGES_FILE" | tr -s ' \t\n' '\n' | sed '/^$/d'
}

# Off Raspberry Pi OS (plain Debian 12: a PC, a virtual machine) its own packages, such
# as python3-picamera2, python3-libcamera and python3-kms++, are not in the archive:
# install the rest and name what was left out, rather than fail.
available_packages() {
	local package
	for package in $(packages); do
		if apt-cache show "$package" >/dev/null 2>&1; then
			echo "$package"
		else
			say "$package is not in this system's archive (not Raspberry Pi OS?): skipped" >&2
		fi
	done
}

install_packages() {
	say "installing Debian packages"
	apt-get update -qq
	local wanted
	wanted=$(available_packages)
	# shellcheck disable=SC2046,SC2086  # one word per package
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$wanted
}

install_user() {
	say "creating the callbox user and its groups"
	install -D -m 0644 "$SRC/systemd/callbox.sysusers" "$R/etc/sysusers.d/callbox.conf"
	if [ -n "$R" ]; then
		systemd-sysusers --root="$ROOT" "$R/etc/sysusers.d/callbox.conf"
	else
		systemd-sysusers /etc/sysusers.d/callbox.conf
	fi
}

group_id() {
	awk -F: -v name="$1" '$1 == name { print $3 }' "$R/etc/group"
}

install_source() {
	# A copy of the source the venv is built from: the chroot sees it, and the kit keeps
	# the install.sh and README of the version it runs.
	local dest="$R$PREFIX/src"
	if [ "$(cd "$SRC" && pwd -P)" = "$(mkdir -p "$dest" && cd "$dest" && pwd -P)" ]; then
		return # already running from there (the image build unpacks it in place)
	fi
	say "copying the source to $PREFIX/src"
	rm -rf "$dest"
	mkdir -p "$dest"
	(cd "$SRC" && tar -cf - --exclude=__pycache__ --exclude='*.egg-info' \
		pyproject.toml README.md appliance hal systemd images) | tar -xf - -C "$dest"
}

install_venv() {
	say "building $VENV (system site packages) and installing callbox into it"
	python3 -m venv --system-site-packages "$VENV"
	"$VENV/bin/pip" install --quiet --upgrade pip
	# apt's C extensions (picamera2's simplejpeg, among others) are built against apt's
	# numpy: pip must keep it, never put another numpy in the venv over it. A dependency
	# that needs a newer numpy then fails here, by name, instead of on the kit at start.
	local constraints
	constraints=$(mktemp)
	"$VENV/bin/python" -c 'import importlib.metadata as m; print("numpy==" + m.version("numpy"))' \
		>"$constraints" 2>/dev/null || true
	"$VENV/bin/pip" install --quiet --upgrade --upgrade-strategy only-if-needed \
		--constraint "$constraints" "$PREFIX/src[hardware]"
	rm -f "$constraints"
}

install_files() {
	say "installing the units, the first-boot step and the docs"
	local unit
	for unit in callbox.service callbox-server.service callbox-firstboot.service; do
		install -D -m 0644 "$SRC/systemd/$unit" "$R/etc/systemd/system/$unit"
	done
	# bluez-alsa with the headset profiles a kit needs (A2DP, HFP and HSP)
	install -D -m 0644 "$SRC/systemd/bluealsa-callbox.conf" \
		"$R/etc/systemd/system/bluealsa.service.d/callbox.conf"
	install -D -m 0755 "$HERE/firstboot.sh" "$R/usr/local/libexec/callbox-firstboot"
	install -D -m 0644 "$SRC/README.md" "$R/usr/share/doc/callbox/README.md"
	install -d -m 0755 "$R/usr/local/bin"
	ln -sfn "$VENV/bin/callbox" "$R/usr/local/bin/callbox"
	# The config holds secrets: root writes it, the callbox group reads it.
	install -d -m 0750 "$R/etc/callbox"
	chown "0:$(group_id callbox)" "$R/etc/callbox"
}

config_txt_path() {
	local path
	for path in "$R/boot/firmware/config.txt" "$R/boot/config.txt"; do
		if [ -f "$path" ]; then
			echo "$path"
			return
		fi
	done
}

update_config_txt() {
	local path
	path=$(config_txt_path)
	if [ -z "$path" ]; then
		say "no boot/firmware/config.txt under $ROOT (not Raspberry Pi OS?): camera and HDMI settings skipped"
		return
	fi
	say "camera and HDMI settings in ${path#"$R"}"
	local tmp
	tmp=$(mktemp "$path.XXXXXX")
	# Drop our previous block, then append the current one: running again changes nothing.
	awk -v begin="$BEGIN_MARK" -v end="$END_MARK" '
		$0 == begin { skip = 1; next }
		$0 == end { skip = 0; next }
		!skip { print }
	' "$path" >"$tmp"
	# Settings the file already has for all boards ([all], or before any section), word
	# for word, are not repeated (an overlay such as vc4-kms-v3d must not be loaded
	# twice); comments and section headers stay.
	{
		echo "$BEGIN_MARK"
		awk 'NR == FNR {
				if ($0 ~ /^\[/) all = ($0 == "[all]")
				else if ($0 !~ /^[[:space:]]*(#|$)/ && all) have[$0] = 1
				next
			}
			/^[[:space:]]*(#|\[|$)/ || !($0 in have) { print }
		' all=1 "$tmp" "$CONFIG_TXT_BLOCK"
		echo "$END_MARK"
	} >"$tmp.block"
	cat "$tmp.block" >>"$tmp"
	rm -f "$tmp.block"
	if cmp -s "$tmp" "$path"; then
		rm -f "$tmp"
	else
		chmod --reference="$path" "$tmp"
		mv "$tmp" "$path"
		REBOOT_NEEDED=1
	fi
}

enable_units() {
	say "enabling $SERVICE and callbox-firstboot.service"
	local other=callbox-server.service
	[ "$SERVICE" = callbox.service ] || other=callbox.service
	if [ -n "$R" ]; then
		systemctl --root="$ROOT" --quiet enable "$SERVICE" callbox-firstboot.service
		systemctl --root="$ROOT" --quiet disable "$other"
	else
		systemctl --quiet enable "$SERVICE" callbox-firstboot.service
		systemctl --quiet disable "$other"
	fi
}

start_now() {
	systemctl daemon-reload
	# The first-boot step writes the config and prints the API token here, once.
	/usr/local/libexec/callbox-firstboot
	say "starting $SERVICE"
	systemctl restart "$SERVICE"
}

REBOOT_NEEDED=0
if [ "$APT" = 1 ]; then install_packages; fi
install_user
install_source
install_files
if [ "$VENV_STEP" = 1 ]; then install_venv; fi
update_config_txt
enable_units
if [ "$START" = 1 ]; then start_now; fi
say "done"
if [ "$REBOOT_NEEDED" = 1 ] && [ -z "$R" ]; then
	say "reboot to apply the camera and HDMI settings in config.txt"
fi
