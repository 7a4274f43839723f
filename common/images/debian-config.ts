// What turns a debootstrapped Debian tree into a system that boots in xenode's container-style
// guest: the image's init is PID 1 of a pid namespace whose /dev/console is a pty, /sys is
// read-only, there are no VTs, no kernel modules and no hardware, and the kernel has mounted /
// from root= before init starts. Linux containers (LXC's Debian template, systemd-nspawn) make
// the same changes.
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type DebianInit = 'systemd' | 'sysvinit';
export type DebianNetwork = 'ifupdown' | 'networkd';

export function parseInit(s: string): DebianInit {
  if (s === 'systemd' || s === 'sysvinit') return s;
  throw new Error(`unknown init "${s}" (use systemd or sysvinit)`);
}
export function parseNetwork(s: string): DebianNetwork {
  if (s === 'ifupdown' || s === 'networkd') return s;
  throw new Error(`unknown network configuration "${s}" (use ifupdown or networkd)`);
}

/**
 * systemd units that cannot work in a user namespace: mounts of kernel filesystems that are not
 * mountable there (debugfs and tracefs fail and leave the system "degraded", seen with Debian
 * 12's systemd 252; configfs, fusectl and hugetlbfs fail the same way where the host exposes
 * their mount points) and the audit socket (audit is not namespaced). Masked = linked to
 * /dev/null, as `systemctl mask` does.
 */
export const MASKED_UNITS = [
  'sys-kernel-debug.mount',
  'sys-kernel-tracing.mount',
  'sys-kernel-config.mount',
  'sys-fs-fuse-connections.mount',
  'dev-hugepages.mount',
  'systemd-journald-audit.socket',
];

/**
 * systemd units with nothing to do in a xenode guest that still cost its boot a process each
 * on the guest's vCPU (0.3-0.5 s each in `systemd-analyze blame` on a busy host): loading
 * kernel modules (the guest kernel has none; systemd-modules-load and every modprobe@ instance)
 * and reaping e2scrub's LVM snapshots (no LVM). Masked per image (configureImage), so trees
 * cached before this list existed get it too.
 */
export const IDLE_UNITS = ['systemd-modules-load.service', 'modprobe@.service', 'e2scrub_reap.service'];

/** sysvinit boot scripts that need a real disk, an RTC or kernel filesystems a user namespace cannot mount. */
export const SYSVINIT_DISABLED = ['checkroot.sh', 'checkfs.sh', 'umountfs', 'umountroot', 'hwclock.sh', 'mount-configfs'];

/** Runs a command inside the tree (its own binaries), failing with its output. */
export function inTree(root: string, cmd: string[], input?: string): void {
  const r = spawnSync('chroot', [root, ...cmd], { encoding: 'utf8', input, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } });
  if (r.error || r.status !== 0) throw new Error(`${cmd.join(' ')} in the image failed: ${r.error?.message ?? (r.stderr || r.stdout).trim()}`);
}

/** Writes a file of the tree, replacing (never following) a symlink already at that path. */
function write(root: string, path: string, text: string): void {
  mkdirSync(join(root, path, '..'), { recursive: true });
  rmSync(join(root, path), { force: true });
  writeFileSync(join(root, path), text);
}

function link(root: string, path: string, target: string): void {
  mkdirSync(join(root, path, '..'), { recursive: true });
  rmSync(join(root, path), { force: true });
  symlinkSync(target, join(root, path));
}

// Linux mounts / itself from root= (xl's root= or extra=); fstab lists only what else to mount.
// No line for / (as in LXC's and Docker's Debian images): it would name a device the guest
// kernel has already mounted, and systemd-remount-fs would remount / with that line's options.
const FSTAB = `# <file system> <mount point> <type> <options> <dump> <pass>
# / is mounted by the kernel from root= (xl's root= or extra=), before init runs.
# Other disks, e.g.: /dev/xvdb /srv ext4 defaults 0 0
`;

const IFUPDOWN_INTERFACES = `# ifupdown (made by xenode mkimage): eth0 is netfront's NIC, DHCP by isc-dhcp-client.
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

# "auto", not "allow-hotplug": there is no udev in the guest to report the NIC's arrival.
auto eth0
iface eth0 inet dhcp
`;

const NETWORKD_ETH0 = `# systemd-networkd (made by xenode mkimage): eth0 is netfront's NIC.
[Match]
Name=eth0

[Network]
DHCP=yes
`;

/**
 * Debian's inittab with the gettys on tty1-6 (VTs a guest does not have) replaced by one on
 * the console, and LXC's `powerfail` line so that SIGPWR powers off as it does in a container.
 * ctrlaltdel (SIGINT to init: xl reboot) keeps Debian's `shutdown -r`.
 */
export function sysvinitInittab(debian: string): string {
  const kept = debian
    .split('\n')
    .filter((l) => !/^\d+:\d*:respawn:\/sbin\/getty/.test(l) && !/^p[fno]::power/.test(l))
    .join('\n')
    .trimEnd();
  return `${kept}

# xenode: the console is the guest's only terminal (a pty; there are no VTs).
co:2345:respawn:/sbin/getty --noclear 38400 console vt102
# SIGPWR to init (as LXC sends to stop a container) powers off.
p0::powerfail:/sbin/init 0
`;
}

/** Changes when configureTree changes, so that trees cached before are built again. */
export const TREE_CONFIG_VERSION = 2;

/** Changes shared by every image of one cached tree (init, network, size). */
export function configureTree(root: string, init: DebianInit, network: DebianNetwork): void {
  write(root, 'etc/fstab', FSTAB);
  if (init === 'systemd') {
    for (const u of MASKED_UNITS) link(root, `etc/systemd/system/${u}`, '/dev/null');
    // The getty on tty1 waits for a VT that never exists; systemd's getty generator starts
    // console-getty.service in a container, enabled here as well so it does not depend on
    // detection.
    rmSync(join(root, 'etc/systemd/system/getty.target.wants/getty@tty1.service'), { force: true });
    link(root, 'etc/systemd/system/getty.target.wants/console-getty.service', '/lib/systemd/system/console-getty.service');
  } else {
    // Boot scripts for hardware a container has not got (LXC's Debian template disables the
    // same): fsck and remount of / (the kernel mounted it), unmounting / at shutdown, the RTC.
    // `remove` (not `disable`, which refuses scripts that only stop, such as umountfs).
    for (const s of SYSVINIT_DISABLED) if (existsSync(join(root, 'etc/init.d', s))) inTree(root, ['update-rc.d', '-f', s, 'remove']);
    const inittab = join(root, 'etc/inittab');
    if (!lstatSync(inittab, { throwIfNoEntry: false })?.isFile()) throw new Error('sysvinit-core did not install /etc/inittab');
    write(root, 'etc/inittab', sysvinitInittab(readFileSync(inittab, 'utf8')));
  }
  if (network === 'networkd') {
    write(root, 'etc/network/interfaces', 'auto lo\niface lo inet loopback\n');
    write(root, 'etc/systemd/network/20-eth0.network', NETWORKD_ETH0);
    inTree(root, ['systemctl', 'disable', 'networking.service']);
    // Without systemd-resolved (its postinst fails inside debootstrap) networkd configures
    // addresses and routes but writes no resolv.conf: install it in the guest for DNS.
    inTree(root, ['systemctl', 'enable', 'systemd-networkd.service']);
  } else {
    write(root, 'etc/network/interfaces', IFUPDOWN_INTERFACES);
  }
  // debootstrap copies the host's resolv.conf in; the guest's DHCP client writes its own
  // (a symlink, such as systemd-resolved's, stays).
  if (!lstatSync(join(root, 'etc/resolv.conf'), { throwIfNoEntry: false })?.isSymbolicLink()) write(root, 'etc/resolv.conf', '');
  // Package files apt can fetch again (`apt update`): ~80 MB less in every image.
  for (const dir of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
    const r = spawnSync('find', [join(root, dir), '-maxdepth', '1', '-type', 'f', '-delete']);
    if (r.status !== 0) throw new Error(`could not clean ${dir} in the image`);
  }
}

function isSystemdTree(root: string): boolean {
  const init = lstatSync(join(root, 'sbin/init'), { throwIfNoEntry: false });
  return !!init?.isSymbolicLink() && /systemd$/.test(readlinkSync(join(root, 'sbin/init')));
}

/** Changes each image gets: its name, root's password, its own machine id (and, for systemd,
 * IDLE_UNITS masked). */
export function configureImage(root: string, hostname: string, rootPassword: string | undefined): void {
  write(root, 'etc/hostname', `${hostname}\n`);
  write(root, 'etc/hosts', `127.0.0.1\tlocalhost\n127.0.1.1\t${hostname}\n\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n`);
  if (rootPassword === undefined) inTree(root, ['passwd', '-d', 'root']);
  else inTree(root, ['chpasswd'], `root:${rootPassword}\n`);
  if (isSystemdTree(root)) for (const u of IDLE_UNITS) link(root, `etc/systemd/system/${u}`, '/dev/null');
  // Empty: systemd makes a new id on the first boot, so two guests from one cache differ.
  if (existsSync(join(root, 'etc/machine-id'))) write(root, 'etc/machine-id', '');
  rmSync(join(root, 'var/lib/dbus/machine-id'), { force: true });
}
