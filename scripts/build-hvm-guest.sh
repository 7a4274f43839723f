#!/usr/bin/env bash
# Build the HVM-on-KVM test guest from Debian's own packages: the stock kernel image (the
# kernel package that Debian's linux-image-amd64 points at) and a busybox initramfs that
# carries that kernel's own modules for our emulated devices (8139too, e1000, ata_piix and
# the SCSI/ATA stack, ext4). Nothing is compiled.
#
# Output (cached; a second run only prints the path):
#   $XENODE_LIB_DIR/hvm-guest/<kernel version>-<init hash>/
#     vmlinuz      Debian's bzImage, as shipped
#     initrd.img   the initramfs, gzip-compressed (what a boot loader would be given)
#     initrd.cpio  the same, uncompressed (where guest kernel mode is emulated, as on a PVM
#                  host, gunzip inside the guest costs minutes: see docs/kvm.md)
#     guest.json   versions and module list
# The last line on stdout is that directory. Keyed by kernel version and by a hash of this
# script, so editing /init below rebuilds the initramfs and nothing else is ever stale.
#
# Options / environment:
#   --print-dir         print the cache directory it would use, build nothing
#   --force             rebuild even when cached
#   XENODE_HVM_KERNEL_PKG=linux-image-6.1.0-56-amd64   pin a kernel package
#   XENODE_LIB_DIR      cache root (default /var/lib/xenode)
#
# The guest's /init understands these kernel command-line words (from `extra`):
#   xenode.ip=A.B.C.D/NN  static address on eth0 (otherwise: dhcp if xenode.dhcp=1, else none)
#   xenode.gw=A.B.C.D     default route
#   xenode.httpd=PORT     busybox httpd on PORT serving /srv/www (index.html names the guest)
#   xenode.run=CMD        one command run before the shell (use '+' for spaces... or quote)
#   xenode.modules=a,b    modules to load instead of the default set (8139too e1000 ata_piix
#                         sd_mod sr_mod); every module in the image can be modprobe'd later
#   xenode.noshell        power off (halt) after xenode.run instead of starting a shell
set -euo pipefail

LIB_DIR=${XENODE_LIB_DIR:-/var/lib/xenode}
FORCE=0
PRINT_DIR=0
for a in "$@"; do
  case "$a" in
    --force) FORCE=1 ;;
    --print-dir) PRINT_DIR=1 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "build-hvm-guest: unknown option $a" >&2; exit 2 ;;
  esac
done

log() { echo "build-hvm-guest: $*" >&2; }
die() { echo "build-hvm-guest: $*" >&2; exit 1; }

# Modules the guest loads at boot, in any order (dependencies are resolved below from each
# module's own `depends=` modinfo field, so kmod/depmod is not needed).
WANT_MODULES="8139too e1000 ata_piix ata_generic sd_mod sr_mod ext4 crc32c_generic af_packet"
# The ones /init loads at boot (each costs time where guest kernel mode is emulated).
BOOT_MODULES="8139too e1000 ata_piix sd_mod sr_mod"

# ---- which kernel
pkg=${XENODE_HVM_KERNEL_PKG:-}
resolve_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -1
}
if [ -z "$pkg" ]; then
  pkg=$(resolve_pkg)
  if [ -z "$pkg" ]; then
    log "apt lists have no linux-image-amd64; running apt-get update"
    apt-get update -qq >&2 || true
    pkg=$(resolve_pkg)
  fi
  [ -n "$pkg" ] || die "cannot find Debian's default kernel package (apt-cache depends linux-image-amd64 is empty)"
fi
kver=${pkg#linux-image-}
script_hash=$(sha256sum "$0" | cut -c1-12)
out="$LIB_DIR/hvm-guest/$kver-$script_hash"

if [ "$PRINT_DIR" = 1 ]; then echo "$out"; exit 0; fi
if [ "$FORCE" = 0 ] && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] && [ -s "$out/initrd.cpio" ] && [ -s "$out/guest.json" ]; then
  echo "$out"
  exit 0
fi

for tool in dpkg-deb cpio gzip apt-get; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup.sh installs it: apt-get install cpio)"
done

work=$(mktemp -d /tmp/xenode-hvm-guest.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/deb" "$work/kernel" "$work/bb" "$work/root"

# ---- fetch (apt-get download keeps everything in $work; the _apt user cannot write there,
# so apt says it downloads unsandboxed: harmless, silenced)
log "downloading $pkg and busybox-static"
( cd "$work/deb" && apt-get download "$pkg" busybox-static >/dev/null 2>"$work/apt.err" ) || {
  apt-get update -qq >&2 || true
  ( cd "$work/deb" && apt-get download "$pkg" busybox-static >/dev/null 2>"$work/apt.err" ) || { cat "$work/apt.err" >&2; die "apt-get download failed"; }
}
kdeb=$(ls "$work"/deb/linux-image-*.deb | head -1)
bdeb=$(ls "$work"/deb/busybox-static_*.deb | head -1)
dpkg-deb -x "$kdeb" "$work/kernel"
dpkg-deb -x "$bdeb" "$work/bb"
kpkgver=$(dpkg-deb -f "$kdeb" Version)
bbver=$(dpkg-deb -f "$bdeb" Version)

vmlinuz=$(ls "$work"/kernel/boot/vmlinuz-* | head -1)
[ -s "$vmlinuz" ] || die "no vmlinuz in $kdeb"
moddir=$(ls -d "$work"/kernel/lib/modules/* | head -1)
modver=$(basename "$moddir")

# ---- modules: name -> file index, then a depth-first walk over `depends=`
declare -A MODFILE=()
while IFS= read -r f; do
  b=$(basename "$f"); b=${b%%.ko*}; MODFILE[${b//-/_}]=$f
done < <(find "$moddir/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')

modinfo_field() {  # file field
  local f=$1
  case "$f" in
    *.xz) xz -dc "$f" ;; *.zst) zstd -dcq "$f" ;; *.gz) gzip -dc "$f" ;; *) cat "$f" ;;
  esac | tr '\0' '\n' | sed -n "s/^$2=//p" | head -1
}

declare -A SEEN=()
ORDER=()
visit() {
  local m=${1//-/_}
  [ -n "${SEEN[$m]:-}" ] && return 0
  SEEN[$m]=1
  local f=${MODFILE[$m]:-}
  if [ -z "$f" ]; then
    # Built into the kernel, or absent: only the first is fine.
    if grep -q "/${1}.ko\$\|/${m}.ko\$" "$moddir/modules.builtin" 2>/dev/null; then return 0; fi
    log "warning: module $1 is neither a module nor built in; skipped"
    return 0
  fi
  local deps d
  deps=$(modinfo_field "$f" depends)
  for d in ${deps//,/ }; do visit "$d"; done
  ORDER+=("$m")
}
for m in $WANT_MODULES; do visit "$m"; done

R=$work/root
mkdir -p "$R"/{bin,sbin,dev,proc,sys,tmp,etc,root,srv/www,run,var/log,usr/bin,usr/sbin}
chmod 1777 "$R/tmp"
cp "$work/bb/bin/busybox" "$R/bin/busybox"
# Modules flat in /lib/modules/<release>/ with a modules.dep busybox's modprobe understands.
M=$R/lib/modules/$modver
mkdir -p "$M"
: > "$M/modules.dep"
for m in "${ORDER[@]}"; do
  f=${MODFILE[$m]}
  case "$f" in
    *.xz) xz -dc "$f" > "$M/$m.ko" ;;
    *.zst) zstd -dcq "$f" > "$M/$m.ko" ;;
    *.gz) gzip -dc "$f" > "$M/$m.ko" ;;
    *) cp "$f" "$M/$m.ko" ;;
  esac
  deps=$(modinfo_field "$f" depends)
  line="$m.ko:"
  for d in ${deps//,/ }; do [ -n "${MODFILE[${d//-/_}]:-}" ] && line="$line ${d//-/_}.ko"; done
  echo "$line" >> "$M/modules.dep"
done
echo "$BOOT_MODULES" > "$R/etc/modules.boot"

# Device nodes the kernel needs before devtmpfs is mounted.
mknod -m 600 "$R/dev/console" c 5 1 2>/dev/null || true
mknod -m 666 "$R/dev/null" c 1 3 2>/dev/null || true

cat > "$R/etc/profile" <<'EOF'
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PS1='xenode-hvm:\w# '
export HOME=/root
EOF
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:x:0:' > "$R/etc/group"
echo 'xenode-hvm' > "$R/etc/hostname"
cat > "$R/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
    ;;
esac
exit 0
EOF
chmod +x "$R/etc/udhcpc.script"

cat > "$R/init" <<'EOF'
#!/bin/busybox sh
# xenode HVM guest /init (scripts/build-hvm-guest.sh): mount, load this kernel's own modules
# for the emulated hardware, bring up eth0, then a shell on the serial console.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
hostname -F /etc/hostname

arg() {  # value of xenode.<name>= on the kernel command line
  for w in $(cat /proc/cmdline); do
    case "$w" in "xenode.$1="*) echo "${w#*=}"; return 0 ;; "xenode.$1") echo 1; return 0 ;; esac
  done
  return 1
}

mods=$(arg modules | tr ',' ' ') || mods=$(cat /etc/modules.boot)
echo "xenode-init: loading modules: $mods"
for m in $mods; do modprobe "$m" 2>/dev/null || echo "xenode-init: modprobe $m failed"; done
mdev -s 2>/dev/null || true

ip link set lo up
if ip link show eth0 >/dev/null 2>&1; then
  ip link set eth0 up
  if a=$(arg ip); then
    ip addr add "$a" dev eth0
    if g=$(arg gw); then ip route add default via "$g"; fi
  elif arg dhcp >/dev/null; then
    udhcpc -i eth0 -q -n -t 3 -T 2 -s /etc/udhcpc.script >/dev/null 2>&1 || true
  fi
  echo "xenode-init: eth0 $(ip -o -4 addr show dev eth0 | awk '{print $4}')"
fi
if p=$(arg httpd); then
  echo "<h1>xenode hvm guest $(uname -r)</h1>" > /srv/www/index.html
  httpd -p "$p" -h /srv/www
  echo "xenode-init: httpd on port $p"
fi
if c=$(arg run); then sh -c "$(echo "$c" | tr '+' ' ')"; fi
if arg noshell >/dev/null; then sync; poweroff -f; fi
echo "xenode-init: ready"
while true; do
  setsid cttyhack sh -l
  sleep 1
done
EOF
chmod +x "$R/init"

log "packing initramfs (${#ORDER[@]} modules)"
mkdir -p "$out.tmp"
( cd "$R" && find . -print0 | cpio --null -o -H newc --quiet --owner=0:0 ) > "$out.tmp/initrd.cpio"
gzip -9 -c "$out.tmp/initrd.cpio" > "$out.tmp/initrd.img"
cp "$vmlinuz" "$out.tmp/vmlinuz"
cat > "$out.tmp/guest.json" <<EOF
{
  "kernelPackage": "$pkg",
  "kernelPackageVersion": "$kpkgver",
  "kernelRelease": "$modver",
  "busyboxVersion": "$bbver",
  "modules": [$(printf '"%s",' "${ORDER[@]}" | sed 's/,$//')],
  "bootModules": [$(printf '"%s",' $BOOT_MODULES | sed 's/,$//')],
  "builtBy": "scripts/build-hvm-guest.sh $script_hash",
  "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
rm -rf "$out"
mv "$out.tmp" "$out"
# Older builds for this kernel (other init hashes) are stale: remove them.
for d in "$LIB_DIR/hvm-guest/$kver"-*; do
  [ "$d" = "$out" ] || [ ! -d "$d" ] || rm -rf "$d"
done
log "built $out ($(du -sh "$out" | cut -f1))"
echo "$out"
