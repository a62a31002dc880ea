#!/bin/bash
# callbox first boot (installed as /usr/local/libexec/callbox-firstboot, run once by
# callbox-firstboot.service): writes /etc/callbox/callbox.toml with this kit's identity
# (from its hostname), a session-server admin key and a REST API token, with TLS on for
# the REST API and the session server (the daemon makes a self-signed certificate on its
# first start and shows its SHA-256 fingerprint on the screen; --plain-http leaves TLS off,
# for a trusted network only), then shows the token and the kit's addresses on standard
# output (the unit sends it to the HDMI screen) for --hold seconds. Does nothing if the
# config already exists.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: callbox-firstboot [--root DIR] [--hold SECONDS] [--plain-http]
  --root DIR      work on the system installed under DIR (default /)
  --hold SECONDS  keep the token on the screen this long before returning (default 0)
  --plain-http    serve the REST API and the session server over plain HTTP on the LAN
                  (default: HTTPS with the kit's self-signed certificate)
EOF
}

die() {
	echo "callbox-firstboot: $*" >&2
	exit 1
}

ROOT=/
HOLD=0
TLS=true
IMAGE_HOSTNAME=callbox # what images/build.sh gives every kit
while [ $# -gt 0 ]; do
	case "$1" in
	--root)
		[ $# -ge 2 ] || die "--root needs a directory"
		ROOT=$2
		shift 2
		;;
	--hold)
		[ $# -ge 2 ] || die "--hold needs a number of seconds"
		HOLD=$2
		shift 2
		;;
	--plain-http)
		TLS=false
		shift
		;;
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
[ -d "$ROOT" ] || die "--root $ROOT: no such directory"
[[ "$HOLD" =~ ^[0-9]+$ ]] || die "--hold $HOLD: expected a whole number of seconds"
ROOT=${ROOT%/}

CONFIG_DIR="$ROOT/etc/callbox"
CONFIG="$CONFIG_DIR/callbox.toml"
if [ -e "$CONFIG" ]; then
	echo "callbox-firstboot: $CONFIG exists; nothing to do" >&2
	exit 0
fi

# 32 random bytes as 64 hex digits: fits every key's length limits, no quoting needed.
secret() {
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}

hostname=$(tr -d ' \t\n' <"$ROOT/etc/hostname" 2>/dev/null || true)
[ -n "$hostname" ] || hostname=$(uname -n)
# kit.uid allows letters, digits and _.@- only; kit.name is at most 64 characters.
uid=$(printf '%s' "$hostname" | tr -c 'A-Za-z0-9_.@-' '-' | cut -c1-58)
name=$(printf '%s' "$hostname" | tr -cd 'A-Za-z0-9 _.@-' | cut -c1-58)
if [ "$hostname" = "$IMAGE_HOSTNAME" ]; then
	# Every kit flashed from the image starts with the same hostname, but kit ids must
	# differ: add a piece of this machine's id (random if it has none yet).
	suffix=$(head -c 6 "$ROOT/etc/machine-id" 2>/dev/null | tr -cd '0-9a-f' || true)
	[ ${#suffix} = 6 ] || suffix=$(od -An -tx1 -N3 /dev/urandom | tr -d ' \n')
	uid="$uid-$suffix"
	name="$name $suffix"
fi
[ -n "$name" ] || name=$uid

group_id=$(awk -F: '$1 == "callbox" { print $3 }' "$ROOT/etc/group" 2>/dev/null || true)
[ -n "$group_id" ] || die "no callbox group in $ROOT/etc/group (run install.sh first)"

api_token=$(secret)
admin_key=$(secret)
if [ "$TLS" = true ]; then
	scheme=https
else
	scheme=http
fi

mkdir -p "$CONFIG_DIR"
tmp=$(mktemp "$CONFIG_DIR/.callbox.toml.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<EOF
# Written by callbox-firstboot on $(date -u +%Y-%m-%d). Every key is optional; the README
# lists them all. The API token and admin key are secrets: this file is root:callbox 0640.

[kit]
uid = "$uid"
name = "$name"

[server]
# This kit hosts a session server other kits can use (they set server.url to it, and
# server.fingerprint to the SHA-256 this kit's screen shows).
embedded = true
listen = "0.0.0.0:8090"
url = "$scheme://127.0.0.1:8090"
admin_key = "$admin_key"

[server.tls]
# https and wss with the certificate in /var/lib/callbox/tls/ (made on the first start;
# its SHA-256 fingerprint is on the screen). enabled = false: plain HTTP on the LAN.
enabled = $TLS

[api]
listen = "0.0.0.0:8080"
token = "$api_token"

[api.tls]
# The web pages and REST API over https (a browser needs it for a guest's camera).
enabled = $TLS

[paths]
# Where systemd's StateDirectory= is, so \`sudo callbox users add\` finds the same state.
state = "/var/lib/callbox"
EOF
chmod 0640 "$tmp"
chown "0:$group_id" "$tmp"
sync "$tmp"
mv "$tmp" "$CONFIG"
trap - EXIT
sync "$CONFIG_DIR"
echo "callbox-firstboot: wrote $CONFIG for kit $uid" >&2

addresses=""
if [ "$ROOT" = "" ]; then # only on the running system: its addresses mean something
	addresses=$(hostname -I 2>/dev/null || true)
fi

# What the screen shows, written in one go: the config is what matters, so a console that
# cannot be written (another program hung it up) is logged, and the unit still succeeds.
screen=$(
	printf '\033[2J\033[H'
	cat <<EOF

  callbox kit "$name" is set up.

  Web pages and REST API:   $scheme://$hostname.local:8080/
EOF
	for address in $addresses; do
		case "$address" in
		*:*) printf '                            %s://[%s]:8080/\n' "$scheme" "$address" ;;
		*) printf '                            %s://%s:8080/\n' "$scheme" "$address" ;;
		esac
	done
	cat <<EOF

  API token (keep it safe; it is also in /etc/callbox/callbox.toml):

      $api_token

  Other kits can use this kit's session server: server.url = "$scheme://$hostname.local:8090"

EOF
	if [ "$TLS" = true ]; then
		cat <<EOF
  The certificate is this kit's own: check a browser's warning against the SHA-256
  fingerprint the screen shows once the appliance has started.

EOF
	fi
)
if ! printf '%s\n' "$screen" 2>/dev/null; then
	echo "callbox-firstboot: could not show the token on the console; it is in $CONFIG" >&2
	HOLD=0
fi
if [ "$HOLD" -gt 0 ]; then
	echo "  The appliance starts in $HOLD seconds." 2>/dev/null || true
	sleep "$HOLD"
fi
