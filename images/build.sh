#!/bin/bash
# Build the callbox SD-card image with pi-gen: Raspberry Pi OS Lite (Bookworm, 64-bit)
# plus the stage in images/stage-callbox (callbox in /opt/callbox/venv, the callbox user,
# the units enabled, config.txt for camera and HDMI, the first-boot step).
#
# The build host needs network access (pi-gen is cloned from GitHub; apt and PyPI are
# used inside the image) and either pi-gen's dependencies on a Debian/Ubuntu host (the
# build runs as root, through sudo if needed) or Docker (--docker).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/.." && pwd)

usage() {
	cat <<'EOF'
Usage: images/build.sh [--work DIR] [--pi-gen DIR] [--docker] [--prepare-only]
  --work DIR      where pi-gen is cloned and builds (default images/.work)
  --pi-gen DIR    use this pi-gen checkout instead of cloning one
  --docker        build with pi-gen's build-docker.sh instead of build.sh
  --prepare-only  set up pi-gen (config, stage, callbox source) and stop

Environment (defaults in brackets):
  PIGEN_REPO [https://github.com/RPi-Distro/pi-gen.git]
  PIGEN_REF [2026-06-18-raspios-bookworm-arm64: a Bookworm 64-bit release of pi-gen]
  IMG_NAME [callbox]  TARGET_HOSTNAME [callbox]  DEPLOY_COMPRESSION [xz]
  FIRST_USER_NAME [callbox-admin]  FIRST_USER_PASS [random; saved next to the build]
  ENABLE_SSH [0]  LOCALE_DEFAULT [en_GB.UTF-8]  KEYBOARD_KEYMAP [gb]
  KEYBOARD_LAYOUT [English (UK)]  TIMEZONE_DEFAULT [Europe/London]  WPA_COUNTRY [unset]
EOF
}

say() { echo "build.sh: $*"; }
die() {
	echo "build.sh: $*" >&2
	exit 1
}

WORK="$HERE/.work"
PIGEN=""
DOCKER=0
PREPARE_ONLY=0
while [ $# -gt 0 ]; do
	case "$1" in
	--work)
		[ $# -ge 2 ] || die "--work needs a directory"
		WORK=$2
		shift 2
		;;
	--pi-gen)
		[ $# -ge 2 ] || die "--pi-gen needs a directory"
		PIGEN=$2
		shift 2
		;;
	--docker) DOCKER=1 && shift ;;
	--prepare-only) PREPARE_ONLY=1 && shift ;;
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

PIGEN_REPO=${PIGEN_REPO:-https://github.com/RPi-Distro/pi-gen.git}
# The image is Raspberry Pi OS Bookworm, 64-bit: pi-gen's release tag of the last Bookworm
# arm64 image (the head of its bookworm-arm64 branch). Its arm64 branch builds trixie now.
RELEASE=bookworm
PIGEN_REF=${PIGEN_REF:-2026-06-18-raspios-bookworm-arm64}
IMG_NAME=${IMG_NAME:-callbox}
case "$IMG_NAME" in
*[!A-Za-z0-9_.-]* | "") die "IMG_NAME=$IMG_NAME: letters, digits and _.- only" ;;
esac

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# --- pi-gen ---------------------------------------------------------------------------
if [ -z "$PIGEN" ]; then
	PIGEN="$WORK/pi-gen"
	if [ ! -d "$PIGEN" ]; then
		say "cloning pi-gen ($PIGEN_REF) into $PIGEN"
		git clone --depth 1 --branch "$PIGEN_REF" "$PIGEN_REPO" "$PIGEN"
	else
		say "using the pi-gen clone in $PIGEN (delete it to fetch a fresh one)"
	fi
fi
[ -d "$PIGEN/stage2" ] || die "$PIGEN does not look like pi-gen (no stage2/)"
# A pi-gen for another Debian release would build a system the stage was not made for
# (its packages, python3-picamera2 and numpy, are Bookworm's).
# shellcheck disable=SC2016  # the pattern matches a literal ${RELEASE:-...}
PIGEN_RELEASE=$(sed -n 's/^export RELEASE=\${RELEASE:-\([a-z]*\)}.*/\1/p' "$PIGEN/build.sh" 2>/dev/null || true)
if [ "$PIGEN_RELEASE" != "$RELEASE" ]; then
	die "$PIGEN builds ${PIGEN_RELEASE:-an unknown release}, not $RELEASE: use a $RELEASE ref of pi-gen (PIGEN_REF)"
fi
say "pi-gen builds $RELEASE"
PIGEN=$(cd "$PIGEN" && pwd)
case "$PIGEN" in
*" "*) die "$PIGEN: pi-gen cannot build in a path with spaces" ;;
esac

# --- the stage, with the callbox source -------------------------------------------------
STAGE="$PIGEN/stage-callbox"
say "copying the stage to $STAGE"
rm -rf "$STAGE"
cp -a "$HERE/stage-callbox" "$STAGE"
mkdir -p "$STAGE/00-callbox/files"
TARBALL="$STAGE/00-callbox/files/callbox-src.tar.gz"
SOURCES=(pyproject.toml README.md appliance hal systemd images)
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# The working tree as it is (uncommitted edits and new files too), minus what git
	# ignores (caches, build output) and tracked files deleted since.
	git -C "$SRC" ls-files -z --cached --others --exclude-standard -- "${SOURCES[@]}" |
		while IFS= read -r -d '' file; do
			if [ -e "$SRC/$file" ]; then printf '%s\0' "$file"; fi
		done |
		sort -zu |
		tar -C "$SRC" --null -T - -czf "$TARBALL"
else
	tar -C "$SRC" --exclude=__pycache__ --exclude='*.egg-info' --exclude=.work \
		-czf "$TARBALL" "${SOURCES[@]}"
fi
say "callbox source: $(tar -tzf "$TARBALL" | wc -l) files"

# Only our stage is exported: no plain Lite image from stage2.
touch "$PIGEN/stage2/SKIP_IMAGES"

# --- pi-gen config ------------------------------------------------------------------------
FIRST_USER_NAME=${FIRST_USER_NAME:-callbox-admin}
PASSWORD_FILE="$WORK/$IMG_NAME-$FIRST_USER_NAME-password.txt"
if [ -z "${FIRST_USER_PASS:-}" ]; then
	# pi-gen needs a password when the first-boot user rename is off (an appliance must
	# boot without a wizard). A random one, kept next to the build, never a default.
	FIRST_USER_PASS=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
	(
		umask 077
		printf '%s\n' "$FIRST_USER_PASS" >"$PASSWORD_FILE"
	)
	say "the image's $FIRST_USER_NAME password is in $PASSWORD_FILE"
fi

config_line() {
	printf '%s=%q\n' "$1" "$2"
}
{
	echo "# Written by callbox's images/build.sh."
	config_line IMG_NAME "$IMG_NAME"
	config_line PI_GEN_RELEASE "callbox"
	config_line RELEASE "$RELEASE"
	config_line DEPLOY_COMPRESSION "${DEPLOY_COMPRESSION:-xz}"
	config_line TARGET_HOSTNAME "${TARGET_HOSTNAME:-callbox}"
	config_line FIRST_USER_NAME "$FIRST_USER_NAME"
	config_line FIRST_USER_PASS "$FIRST_USER_PASS"
	config_line DISABLE_FIRST_BOOT_USER_RENAME 1
	config_line ENABLE_SSH "${ENABLE_SSH:-0}"
	config_line LOCALE_DEFAULT "${LOCALE_DEFAULT:-en_GB.UTF-8}"
	config_line KEYBOARD_KEYMAP "${KEYBOARD_KEYMAP:-gb}"
	config_line KEYBOARD_LAYOUT "${KEYBOARD_LAYOUT:-English (UK)}"
	config_line TIMEZONE_DEFAULT "${TIMEZONE_DEFAULT:-Europe/London}"
	if [ -n "${WPA_COUNTRY:-}" ]; then config_line WPA_COUNTRY "$WPA_COUNTRY"; fi
	config_line STAGE_LIST "stage0 stage1 stage2 stage-callbox"
} >"$PIGEN/config"
chmod 600 "$PIGEN/config"

# --- build --------------------------------------------------------------------------------
if [ "$DOCKER" = 1 ]; then
	BUILD=(./build-docker.sh)
elif [ "$(id -u)" = 0 ]; then
	BUILD=(./build.sh)
else
	BUILD=(sudo ./build.sh)
fi
if [ "$PREPARE_ONLY" = 1 ]; then
	say "prepared; to build: (cd $PIGEN && ${BUILD[*]})"
	exit 0
fi
say "building in $PIGEN (this takes a while)"
(cd "$PIGEN" && "${BUILD[@]}")
say "images:"
ls -l "$PIGEN/deploy"
