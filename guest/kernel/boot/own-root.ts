// Booting a guest from its own root filesystem: Linux's prepare_namespace() and kernel_init()
// for a kernel whose disks are FUSE files. Find the device root= names (waiting for it with
// rootwait), check what filesystem it holds, mount it, and start the image's init on it in a
// pid namespace of its own. Every failure ends in Linux's own words and a panic, which the
// toolstack handles with on_crash.
import { checkExtDescriptors, findRootDevice, isIso9660, partitionListing, readExtSuperblock, type RootDevice } from './root-device.js';
import { mountRoot, supportedRootFsTypes, type MountedRoot } from './root-mount.js';
import { startOwnInit, type InitOutcome, type OwnInit } from './own-init.js';
import type { RootParams } from './root-params.js';
import { setKernelPhase } from '../lockup-watchdog.js';

export const ROOT_MOUNT_DIR = '/run/rootfs';

export class RootMountError extends Error {}

export interface OwnRoot {
  device: RootDevice;
  mounted: MountedRoot;
  init: OwnInit;
}

function devNumber(d: RootDevice): string {
  return `${d.major}:${d.minor}`;
}

async function waitForDevice(p: RootParams, log: (m: string) => void): Promise<RootDevice> {
  const deadline = Date.now() + p.waitMs;
  let announced = false;
  for (;;) {
    const d = await findRootDevice(p.root);
    if (d) return d;
    if (Date.now() >= deadline) break;
    if (!announced) {
      log(`Waiting for root device ${p.root}...`);
      announced = true;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  log(`VFS: Cannot open root device "${p.root.replace(/^\/dev\//, '')}" or unknown-block(0,0): error -6`);
  log('Please append a correct "root=" boot option; here are the available partitions:');
  for (const l of await partitionListing()) log(l);
  throw new RootMountError('VFS: Unable to mount root fs on unknown-block(0,0)');
}

/** Which filesystem to mount: rootfstype= if given, else what the superblock says. */
async function chooseFsType(d: RootDevice, p: RootParams, log: (m: string) => void): Promise<string> {
  const sb = await readExtSuperblock(d.path);
  const iso = !sb && (await isIso9660(d.path));
  const tried = p.fstypes.length ? p.fstypes : supportedRootFsTypes();
  for (const t of tried) {
    if (!supportedRootFsTypes().includes(t)) continue;
    // An ext superblock mounts as any of ext2/3/4 the way Linux's ext4 driver serves all three.
    if (sb && t.startsWith('ext')) return p.fstypes.length ? t : sb.type;
    if (iso && t === 'iso9660') return t;
  }
  if (p.fstypes.length && !sb) for (const t of p.fstypes) if (t.startsWith('ext')) log(`EXT4-fs (${d.name}): VFS: Can't find ${t} filesystem`);
  log('List of all partitions:');
  for (const l of await partitionListing()) log(l);
  log(`No filesystem could mount root, tried: ${tried.map((t) => ` ${t}`).join('')}`);
  throw new RootMountError(`VFS: Unable to mount root fs on unknown-block(${devNumber(d)})`);
}

export async function bootOwnRoot(
  p: RootParams,
  init: { path: string | null; argv: string[]; env: Record<string, string> },
  ctx: { log: (m: string) => void; memoryBytes: number; procBinds: { source: string; name: string }[]; onInitExit: (o: InitOutcome) => void },
): Promise<OwnRoot> {
  const { log } = ctx;
  setKernelPhase(`root: waiting for ${p.root}`);
  const device = await waitForDevice(p, log);
  setKernelPhase(`root: reading ${device.name}'s superblock`);
  const fstype = await chooseFsType(device, p, log);
  let mounted: MountedRoot;
  try {
    // fuse2fs mounts some filesystems Linux refuses (garbage group descriptors): check first.
    const bad = fstype.startsWith('ext') ? await checkExtDescriptors(device.path) : null;
    if (bad) {
      log(`EXT4-fs (${device.name}): ${bad}`);
      throw new Error('group descriptors corrupted!');
    }
    setKernelPhase(`root: mounting ${device.name} (${fstype})`);
    mounted = await mountRoot(device, fstype, ROOT_MOUNT_DIR, { flags: p.flags, readonlyDevice: device.readonly, log });
  } catch (e) {
    log(`${fstype.startsWith('ext') ? 'EXT4-fs' : fstype} (${device.name}): ${(e as Error).message}`);
    log(`No filesystem could mount root, tried:  ${fstype}`);
    throw new RootMountError(`VFS: Unable to mount root fs on unknown-block(${devNumber(device)})`);
  }
  log(`VFS: Mounted root (${fstype} filesystem)${p.readonly || device.readonly ? ' readonly' : ''} on device ${devNumber(device)}.`);
  const path = init.path ?? '/sbin/init';
  log(`Run ${path} as init process`);
  setKernelPhase(`root: starting ${path}`);
  const own = startOwnInit(
    {
      root: ROOT_MOUNT_DIR,
      readonly: p.readonly || device.readonly,
      init: path,
      argv: init.argv,
      env: init.env,
      procBinds: ctx.procBinds,
      // Debian's initramfs sizes /run at 10% of RAM; /dev/shm gets the same here.
      runBytes: Math.max(4 << 20, Math.floor(ctx.memoryBytes / 10)),
    },
    log,
    ctx.onInitExit,
  );
  return { device, mounted, init: own };
}

/** Stop a guest booted from its own root: its init (and with it everything in its pid
 * namespace) first, then unmount the root filesystem so fuse2fs writes back, before the kernel
 * kills whatever is left. */
export async function stopOwnRoot(r: OwnRoot, log: (m: string) => void): Promise<void> {
  const pid = r.init.pid();
  if (pid !== null) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  if (!(await r.mounted.unmount(10_000))) log(`EXT4-fs (${r.device.name}): not written back within 10 s; killed`);
}

/** Boot the OS on the root device, or panic as Linux does when it cannot: the shared last step
 * of the PV and HVM kernels. `shutdown` is the kernel's own (it ignores a second call), and
 * gets init's end (poweroff, reboot or a panic) once the guest has booted. Resolves with the
 * running guest, or null when the boot failed and the domain is going down. */
export async function bootOwnRootOrPanic(
  root: RootParams,
  init: { init: string | null; argv: string[]; env: Record<string, string> },
  ctx: { log: (m: string) => void; memoryBytes: number; procBinds: { source: string; name: string }[] },
  shutdown: (reason: 'poweroff' | 'reboot' | 'crash', why: string) => Promise<void>,
): Promise<OwnRoot | null> {
  try {
    return await bootOwnRoot(root, { path: init.init, argv: init.argv, env: init.env }, {
      ...ctx,
      onInitExit: (o) => void shutdown(o.reason, o.reason === 'crash' ? o.message : `init: ${o.reason === 'reboot' ? 'restart' : 'power off'} requested by the guest`),
    });
  } catch (e) {
    if (!(e instanceof RootMountError)) throw e;
    await shutdown('crash', `Kernel panic - not syncing: ${e.message}`);
    return null;
  }
}
