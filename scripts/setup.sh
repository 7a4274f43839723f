#!/usr/bin/env bash
# Install everything xenode needs on a fresh Debian machine, build it, and put `xl` and
# `xenode` on the PATH. Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: xenode needs root (namespaces, cgroups, TAPs): run with sudo" >&2
  exit 1
fi

# Debian packages (PV block: fuse3 and fuse2fs for guest disks and filesystems, fio for
# bench:block): the stock xenstore tools (interop with our xenstored), iproute2 (ip),
# util-linux (setsid), tmux (drives `xl console` in scripts and tests), e2fsprogs; for PV
# networking's test LAN and benchmarks: dnsmasq-base (the LAN's DHCP server, binary only: no
# host service), iperf3, curl, ethtool, iputils-ping.
# HVM on KVM: cpio (scripts/build-hvm-guest.sh packs the initramfs), xz-utils (the engine
# unpacks a bzImage's xz payload on the host).
# Partition tables: fdisk (sfdisk, to cross-check the partition-table codec in tests).
# The web console's tests: chromium (the headless browser playwright-core drives; nothing
# downloads one), tigervnc-standalone-server (Xvnc: a real RFB server on loopback for the
# noVNC bridge's test) and x11-xserver-utils (xsetroot paints its screen a known colour).
PKGS="xenstore-utils iproute2 util-linux tmux e2fsprogs procps dnsmasq-base iperf3 curl ethtool iputils-ping fuse3 fuse2fs fio genisoimage cpio xz-utils fdisk chromium tigervnc-standalone-server x11-xserver-utils"
# Guests booting their own OS: fuseiso mounts an HVM guest's ISO 9660 CD as its root (a live CD).
PKGS="$PKGS fuseiso"
# HVM display: console-setup-linux (the VGA font the stub domain draws text mode with),
# gvncviewer (gvnccapture) and vncsnapshot (stock VNC clients the display tests connect with).
PKGS="$PKGS console-setup-linux gvncviewer vncsnapshot"
# Guest images (xenode mkimage): fdisk (sfdisk writes --partition tables), busybox-static
# (--from busybox copies its static binary), debootstrap (--from debian).
PKGS="$PKGS busybox-static debootstrap"
# Guest hardening tests: strace and gdb (a hostile guest attaching to its kernel), python3 (its
# system calls), libc6-dev and gcc (a static probe built onto a guest's own image).
PKGS="$PKGS strace gdb python3 libc6-dev gcc"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# npm packages, the native addon (node-gyp, npm's own copy) and the TypeScript build.
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi

# `xl` and `xenode` on the PATH.
npm link --no-audit --no-fund >/dev/null 2>&1 || npm link
# Another `xl` earlier on the PATH (Debian's xen-utils-common installs a wrapper at
# /usr/sbin/xl) would run instead of xenode's: say so, and which one.
ours="$(npm prefix -g)/bin/xl"
first="$(command -v xl || true)"
if [ -n "$first" ] && [ "$(readlink -f "$first")" != "$(readlink -f "$ours")" ]; then
  echo "setup: warning: \`xl' on your PATH is $first, not xenode's ($ours)." >&2
  echo "setup: warning: run $ours, or put $(dirname "$ours") before $(dirname "$first") in PATH (or remove that package)." >&2
fi
echo "setup: done ($(command -v xl), $(command -v xenode))"
