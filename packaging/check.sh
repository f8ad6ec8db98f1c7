#!/usr/bin/env bash
# Builds the .deb with cargo-deb and checks it: contents and control data,
# `systemd-analyze verify` and `systemd-analyze security --offline=true` of
# the packaged unit (exposure at most $MAX_EXPOSURE), and, as root on a box
# without roster installed, `dpkg -i` / `roster check-config` / `dpkg --purge`.
# Installs what it needs (idempotently). Run from anywhere (as root for the
# install step):
#   bash packaging/check.sh
# Exits non-zero with a "packaging/check.sh: FAIL: ..." line on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
UNIT=roster.service

fail() {
  echo "packaging/check.sh: FAIL: $*" >&2
  exit 1
}
step() { echo "== packaging: $*"; }

work=$(mktemp -d)
installed_here=0
user_existed=1
cleanup() {
  if [ "$installed_here" = 1 ]; then
    dpkg --purge roster >/dev/null 2>&1 || echo "packaging/check.sh: warning: dpkg --purge roster failed" >&2
    if [ "$user_existed" = 0 ] && getent passwd roster >/dev/null; then
      userdel roster >/dev/null 2>&1 || true
      groupdel roster >/dev/null 2>&1 || true
    fi
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step "tools"
if ! command -v systemd-analyze >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
fi
command -v dpkg-deb >/dev/null || fail "dpkg-deb not found (not a Debian system?)"
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
fi
cargo deb --version

step "cargo deb"
rm -f target/debian/roster_*.deb
# CHECK_DEB_NO_BUILD=1 packages the existing target/release/roster (quicker
# re-runs while editing packaging/ only).
cargo deb ${CHECK_DEB_NO_BUILD:+--no-build} >"$work/cargo-deb.out" || fail "cargo deb failed"
deb=$(tail -n 1 "$work/cargo-deb.out")
[ -f "$deb" ] || fail "cargo deb did not print the path of a .deb (got: $deb)"
echo "$deb"

step "dpkg-deb -c (contents)"
dpkg-deb -c "$deb" >"$work/contents"
# "-rwxr-xr-x 0/0 SIZE DATE TIME ./path" -> "MODE OWNER ./path"
awk '{print $1, $2, $6}' "$work/contents" >"$work/files"
expect() { # MODE PATH
  grep -qx -- "$1 0/0 ./$2" "$work/files" || fail "the .deb lacks $2 with mode $1 owned by root:
$(cat "$work/contents")"
}
expect -rwxr-xr-x usr/bin/roster
expect -rw-r----- etc/roster/config.toml
expect -rw-r--r-- usr/share/doc/roster/README.md
expect -rw-r--r-- usr/share/doc/roster/config.example.toml
expect -rw-r--r-- usr/lib/sysusers.d/roster.conf
unit_path=
for p in usr/lib/systemd/system/$UNIT lib/systemd/system/$UNIT; do
  if grep -qx -- "-rw-r--r-- 0/0 ./$p" "$work/files"; then unit_path=$p; fi
done
[ -n "$unit_path" ] || fail "the .deb lacks (usr/)lib/systemd/system/$UNIT"
# Nothing outside the package's own paths (directories leading to them are fine).
outside=$(awk '{print $3}' "$work/files" | grep -vxE '\./((usr/(bin|share|share/doc|lib|lib/systemd|lib/systemd/system|lib/sysusers\.d)|etc|lib|lib/systemd|lib/systemd/system)/?|usr/?|usr/bin/roster|etc/roster/(config\.toml)?|usr/share/doc/roster/.*|(usr/)?lib/systemd/system/roster\.service|usr/lib/sysusers\.d/roster\.conf)' || true)
[ -z "$outside" ] || fail "the .deb installs paths outside its own: $outside"

step "dpkg-deb -I (control data)"
dpkg-deb -I "$deb" >"$work/info"
cat "$work/info"
[ "$(dpkg-deb -f "$deb" Package)" = roster ] || fail "Package is not roster"
dpkg-deb -f "$deb" Depends | grep -q 'systemd' || fail "Depends lacks systemd (systemd-sysusers is needed by postinst)"
[ -n "$(dpkg-deb -f "$deb" Maintainer)" ] || fail "no Maintainer"
[ "$(dpkg-deb -I "$deb" conffiles)" = /etc/roster/config.toml ] ||
  fail "conffiles is not exactly /etc/roster/config.toml: $(dpkg-deb -I "$deb" conffiles 2>&1)"
dpkg-deb -I "$deb" postinst | grep -q 'systemd-sysusers.*roster.conf' || fail "postinst does not run systemd-sysusers roster.conf"
dpkg-deb -I "$deb" postinst | grep -q 'deb-systemd-helper enable roster.service' || fail "postinst does not enable $UNIT"
if dpkg-deb -I "$deb" postinst | grep -q 'deb-systemd-invoke start'; then
  fail "postinst starts $UNIT; it must only enable it (the operator edits the config first)"
fi

step "the packaged config and unit"
root="$work/root"
dpkg-deb -x "$deb" "$root"
ROSTER_NO_SYSTEM_CONFIG=1 "$root/usr/bin/roster" check-config "$root/etc/roster/config.toml" ||
  fail "roster check-config rejects the packaged /etc/roster/config.toml"
unit="$root/$unit_path"
for line in Type=notify NotifyAccess=main 'ExecStart=/usr/bin/roster serve --config /etc/roster/config.toml' \
  'ExecReload=/bin/kill -HUP $MAINPID' User=roster StateDirectory=roster ConfigurationDirectory=roster \
  WorkingDirectory=/var/lib/roster WatchdogSec=30 TimeoutStopSec=30 UMask=0077 CapabilityBoundingSet= \
  ProtectSystem=strict; do
  grep -q -- "^$line" "$unit" || fail "$unit_path lacks $line"
done

step "systemd-analyze verify"
# verify needs the unit's binaries and the standard units; give it a root dir
# holding the extracted package plus the host's unit files and /usr/bin/kill.
[ "$unit_path" = usr/lib/systemd/system/$UNIT ] || { mkdir -p "$root/usr/lib/systemd/system"; cp "$unit" "$root/usr/lib/systemd/system/$UNIT"; }
mkdir -p "$root/usr/lib/systemd" "$root/usr/bin"
cp -a -n /usr/lib/systemd/system/. "$root/usr/lib/systemd/system/" # -n: the packaged unit wins
cp /bin/kill "$root/usr/bin/kill"
[ -e "$root/bin" ] || ln -s usr/bin "$root/bin"
if ! systemd-analyze verify --root="$root" "$UNIT" >"$work/verify" 2>&1 || [ -s "$work/verify" ]; then
  fail "systemd-analyze verify $UNIT:
$(cat "$work/verify")"
fi
echo "ok"

step "systemd-analyze security --offline=true"
systemd-analyze security --offline=true "$unit" >"$work/security" 2>&1 || true
score_line=$(grep 'Overall exposure level' "$work/security" || true)
[ -n "$score_line" ] || fail "systemd-analyze security printed no score:
$(cat "$work/security")"
echo "$score_line"
score=$(echo "$score_line" | sed -E 's/.*: ([0-9]+\.[0-9]+) .*/\1/')
awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s + 0 <= m + 0) }' ||
  fail "exposure $score is above $MAX_EXPOSURE:
$(grep '✗' "$work/security")"

step "dpkg -i / check-config / dpkg --purge"
if [ "$(id -u)" != 0 ]; then
  echo "skipped: not root"
elif dpkg-query -W -f '${Status}' roster 2>/dev/null | grep -q 'install ok'; then
  echo "skipped: roster is already installed on this machine; not touching it"
else
  getent passwd roster >/dev/null || user_existed=0
  installed_here=1
  dpkg -i "$deb" || fail "dpkg -i $deb failed"
  [ -x /usr/bin/roster ] || fail "/usr/bin/roster missing after dpkg -i"
  getent passwd roster >/dev/null || fail "postinst did not create the roster system user"
  [ -L /etc/systemd/system/multi-user.target.wants/$UNIT ] || fail "$UNIT was not enabled"
  roster check-config /etc/roster/config.toml || fail "roster check-config /etc/roster/config.toml failed"
  # It may hold secrets: root and the service may read it, others not.
  [ "$(stat -c '%a %U %G' /etc/roster/config.toml)" = "640 root roster" ] ||
    fail "/etc/roster/config.toml is $(stat -c '%a %U %G' /etc/roster/config.toml), not 640 root roster"
  runuser -u roster -- /usr/bin/roster check-config /etc/roster/config.toml >/dev/null ||
    fail "the roster user cannot read /etc/roster/config.toml"
  systemd-analyze verify /usr/lib/systemd/system/$UNIT >"$work/verify" 2>&1 && [ ! -s "$work/verify" ] ||
    fail "systemd-analyze verify of the installed unit:
$(cat "$work/verify")"
  dpkg --purge roster || fail "dpkg --purge roster failed"
  installed_here=0
  for p in /usr/bin/roster /etc/roster/config.toml /usr/lib/systemd/system/$UNIT /etc/systemd/system/multi-user.target.wants/$UNIT; do
    [ ! -e "$p" ] && [ ! -L "$p" ] || fail "$p is left after dpkg --purge"
  done
  if [ "$user_existed" = 0 ]; then
    userdel roster >/dev/null 2>&1 || true
    groupdel roster >/dev/null 2>&1 || true
  fi
  echo "ok"
fi

echo "packaging/check.sh: ok ($deb, $score_line)"
