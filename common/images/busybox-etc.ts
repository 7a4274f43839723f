// The configuration files of the busybox root (`xenode mkimage --from busybox`): busybox init's
// inittab and boot/stop scripts, the user database, the network configuration for busybox's
// ifupdown and the udhcpc script it runs.
export interface RootFile {
  path: string;
  text: string;
  mode: number;
}

export interface BusyboxEtcOptions {
  hostname: string;
  rootPasswordHash: string;
}

// busybox init: sysinit runs first (and is waited for); the getty on `console` is respawned
// whenever its session ends, so the console always shows `login:`. ctrlaltdel is what a
// SIGINT to init runs (xl reboot, as Linux's Xen PV kernel does); the shutdown lines run on
// poweroff/reboot before init sends every process TERM, then KILL, then calls reboot(2).
const INITTAB = `# busybox init (made by xenode mkimage --from busybox)
::sysinit:/etc/init.d/rcS
::respawn:/sbin/getty -L 38400 console vt102
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/init.d/rcK
`;

const RCS = `#!/bin/sh
# Boot: mount what the kernel has not mounted already, name the host, bring the network up.
PATH=/sbin:/bin:/usr/sbin:/usr/bin
export PATH
mounted() { grep -q "^[^ ]* $1 " /proc/mounts 2>/dev/null; }
mounted /proc || mount -t proc -o nosuid,nodev,noexec proc /proc
mounted /sys || mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys
mounted /dev || mount -t devtmpfs -o nosuid,mode=0755 dev /dev
mkdir -p /dev/pts /dev/shm
mounted /dev/pts || mount -t devpts -o nosuid,noexec,gid=5,mode=620,ptmxmode=0666 devpts /dev/pts
mounted /dev/shm || mount -t tmpfs -o nosuid,nodev,mode=1777 shm /dev/shm
mounted /run || mount -t tmpfs -o nosuid,nodev,mode=0755 run /run
hostname -F /etc/hostname
ip link set lo up
# DHCP may take seconds or never answer: do not hold the login prompt back for it.
ifup -a &
`;

const RCK = `#!/bin/sh
# Shutdown (before init kills every process): release DHCP leases, write back.
PATH=/sbin:/bin:/usr/sbin:/usr/bin
ifdown -a -f 2>/dev/null
sync
`;

// The kernel mounts / from root= before init runs; rcS mounts the rest.
const FSTAB = `# <file system> <mount point> <type> <options> <dump> <pass>
# / is mounted by the kernel from root= (xl's root= or extra=), before init runs.
proc /proc proc nosuid,nodev,noexec 0 0
`;

// busybox ifupdown: `inet dhcp` runs `udhcpc -R -n -p /var/run/udhcpc.eth0.pid -i eth0`,
// which calls /etc/udhcpc/default.script (the path compiled into Debian's busybox) to apply the lease.
// lo is up already (rcS), so ifup does not try to add 127.0.0.1 a second time.
const INTERFACES = `auto eth0
iface eth0 inet dhcp
`;

// The udhcpc script (as busybox's examples/udhcp/simple.script): udhcpc passes the event as $1
// and the lease in the environment ($interface $ip $subnet $router $dns $domain).
const UDHCPC_SCRIPT = `#!/bin/sh
# udhcpc's event script: configure $interface from the lease in the environment.
[ -n "$1" ] || { echo "run by udhcpc" >&2; exit 1; }
RESOLV_CONF=/etc/resolv.conf
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set dev "$interface" up
    ;;
  bound|renew)
    # A renewal of the same lease leaves the address (and connections using it) alone.
    if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/"; then
      ip -4 addr flush dev "$interface"
      ip addr add "$ip/\${subnet:-255.255.255.0}" broadcast + dev "$interface"
    fi
    if [ -n "$router" ]; then
      while ip route del default dev "$interface" 2>/dev/null; do :; done
      metric=0
      for r in $router; do
        ip route add default via "$r" dev "$interface" metric $metric
        metric=$((metric + 1))
      done
    fi
    : > "$RESOLV_CONF.$$"
    [ -n "$domain" ] && echo "search $domain" >> "$RESOLV_CONF.$$"
    for d in $dns; do echo "nameserver $d" >> "$RESOLV_CONF.$$"; done
    mv "$RESOLV_CONF.$$" "$RESOLV_CONF"
    echo "udhcpc: $interface $ip\${router:+ via $router}"
    ;;
esac
exit 0
`;

export function busyboxFiles(o: BusyboxEtcOptions): RootFile[] {
  return [
    { path: 'etc/inittab', text: INITTAB, mode: 0o644 },
    { path: 'etc/init.d/rcS', text: RCS, mode: 0o755 },
    { path: 'etc/init.d/rcK', text: RCK, mode: 0o755 },
    { path: 'etc/hostname', text: `${o.hostname}\n`, mode: 0o644 },
    { path: 'etc/hosts', text: `127.0.0.1\tlocalhost\n127.0.1.1\t${o.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`, mode: 0o644 },
    {
      path: 'etc/passwd',
      text: 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
      mode: 0o644,
    },
    { path: 'etc/group', text: 'root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n', mode: 0o644 },
    // Field 2 empty: root logs in without a password (busybox login does not prompt).
    { path: 'etc/shadow', text: `root:${o.rootPasswordHash}:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n`, mode: 0o600 },
    { path: 'etc/fstab', text: FSTAB, mode: 0o644 },
    { path: 'etc/network/interfaces', text: INTERFACES, mode: 0o644 },
    { path: 'etc/udhcpc/default.script', text: UDHCPC_SCRIPT, mode: 0o755 },
    { path: 'etc/profile', text: "export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nexport PS1='\\u@\\h:\\w\\$ '\n", mode: 0o644 },
    { path: 'etc/shells', text: '/bin/sh\n/bin/ash\n', mode: 0o644 },
    { path: 'etc/issue', text: 'busybox on xenode (\\l)\n\n', mode: 0o644 },
    { path: 'etc/resolv.conf', text: '', mode: 0o644 },
  ];
}
