// HVM guests outlive dom0 (docs/hvm.md, "The stub domain"; docs/architecture.md, "dom0
// restarts"): after kill -9 of dom0, an HVM guest on an emulated RTL8139 and IDE disk and a
// PV-on-HVM guest keep running in the same stub domains, which the new dom0 takes over. Their
// uptime goes on, pings from the LAN are answered again within seconds, what was fsync'ed
// before the kill is in the image and more can be written after it, `xl console` (on a
// terminal) and VNC reach them, and `xl destroy` / `xl shutdown` afterwards leave nothing of
// their stub domains behind. What happens while no dom0 listens (a power-off, a stub domain
// killed, a reboot) is acted on by the next one; a stub domain whose guest goes while no dom0 runs (dom0
// died in a loop and xenode stopped) leaves nothing behind either.
import { existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { TestLan, netShouldSkip } from '../helpers/lan.js';
import { alive, dom0Pid, killDom0UntilStopped } from '../helpers/platform.js';
import { RfbClient } from '../helpers/rfb-client.js';
import { XlConsole } from '../helpers/xl-console.js';

const EMU_IP = '198.18.3.20';
const readlinkSafe = (p: string) => {
  try {
    return readlinkSync(p);
  } catch {
    return '';
  }
};
const PV_IP = '198.18.3.21';

describe.skipIf(shouldSkip() || netShouldSkip())('HVM guests across a dom0 restart', () => {
  const xn = new Instance('hvmd0');
  const lan = new TestLan('hvmd0', xn.dir);
  const emuDisk = join(xn.dir, 'emu.img');
  const pvDisk = join(xn.dir, 'pv.img');

  const hvm = (name: string, lines: string[]) =>
    xn.config(name, [`builder = 'hvm'`, `name = '${name}'`, `memory = 128`, `vcpus = 1`, `serial = 'pty'`, `on_poweroff = 'destroy'`, `on_crash = 'destroy'`, ...lines, ''].join('\n'));
  const boot = async (name: string, lines: string[]) => {
    await xn.xlOk('create', hvm(name, lines));
    await xn.waitFor(`${name}'s init`, () => /Run .* as init process/.test(xn.consoleLog(name)), 90_000);
  };
  const domid = async (name: string) => Number((await xn.xlOk('domid', name)).trim());
  const xs = async (path: string) => (await xn.xenstore('xenstore-read', path)).stdout.trim();

  /** What a guest's stub domain holds on the host, to check it is all gone after the guest. */
  const stubdomTraces = async (name: string) => {
    const id = await domid(name);
    const pid = Number(await xs(`/local/domain/${id}/image/device-model-pid`));
    const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
    return {
      pid,
      cgroups: ['memory', 'pids'].map((c) => join('/sys/fs/cgroup', c, `${xn.cgroup}-stubdom`, `d${id}`)),
      root: join(xn.dir, 'run', 'stubdom', String(id)),
      record: join(xn.dir, 'run', 'toolstack', `d${id}.json`),
      claim: `@xenode-uid-range-${uid}`,
    };
  };
  type Traces = Awaited<ReturnType<typeof stubdomTraces>>;
  const leftOf = (t: Traces) => [
    ...(alive(t.pid) ? [`stub domain process ${t.pid}`] : []),
    ...[...t.cgroups, t.root, t.record].filter((p) => existsSync(p)),
    ...(claimHolders(t.claim).length > 0 ? [`uid claim ${t.claim} held by ${claimHolders(t.claim).join(', ')}`] : []),
  ];
  /** Processes of this instance holding the abstract socket that claims a uid range (other
   * xenode instances on the host may claim the same range once it is free). */
  const claimHolders = (name: string): number[] => {
    const inodes = readFileSync('/proc/net/unix', 'utf8')
      .split('\n')
      // Abstract names show with a leading '@' and the rest of sun_path as '@'s.
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[7]?.replace(/@+$/, '') === name)
      .map((f) => f[6]);
    if (inodes.length === 0) return [];
    const links = new Set(inodes.map((i) => `socket:[${i}]`));
    const out: number[] = [];
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      try {
        if (!readFileSync(`/proc/${pid}/environ`, 'utf8').includes(xn.dir)) continue;
        if (readdirSync(`/proc/${pid}/fd`).some((fd) => links.has(readlinkSafe(`/proc/${pid}/fd/${fd}`)))) out.push(Number(pid));
      } catch {
        /* gone */
      }
    }
    return out;
  };

  const killDom0 = async (how: () => void) => {
    const old = dom0Pid(xn);
    how();
    await xn.waitFor('a new dom0 answering xl list', async () => {
      try {
        return dom0Pid(xn) !== old && (await xn.xl('list')).code === 0;
      } catch {
        return false;
      }
    }, 20_000);
  };

  beforeAll(async () => {
    for (const img of [emuDisk, pvDisk]) writeFileSync(img, Buffer.alloc(8 << 20));
    await xn.start();
    await lan.up();
    await boot('hemu', [
      `disk = [ 'file:${emuDisk},hda,w' ]`,
      `vif = [ 'type=ioemu, bridge=${lan.bridge}, mac=00:16:3e:38:d0:20' ]`,
      `extra = 'ip=${EMU_IP}::198.18.0.1:255.254.0.0::eth0:off'`,
      `vnc = 1`,
    ]);
    await boot('hpv', [
      `disk = [ 'file:${pvDisk},hda,w' ]`,
      `vif = [ 'bridge=${lan.bridge}, mac=00:16:3e:38:d0:21' ]`,
      `extra = 'ip=${PV_IP}::198.18.0.1:255.254.0.0::eth0:off xen_pvhvm=1'`,
      `vnc = 0`,
    ]);
  }, 240_000);

  afterAll(async () => {
    await xn.stop();
    lan.down();
  }, 60_000);

  it('kill -9 of dom0: both guests keep running, on the network, disk, console and VNC, and go cleanly afterwards', async () => {
    for (const ip of [EMU_IP, PV_IP]) await xn.waitFor(`${ip} to answer pings`, () => lan.ping(ip, 1), 30_000);
    const ids = { hemu: await domid('hemu'), hpv: await domid('hpv') };
    const traces = { hemu: await stubdomTraces('hemu'), hpv: await stubdomTraces('hpv') };
    // Written and fsync'ed through the emulated IDE disk and through blkfront before the kill.
    await xn.consoleRun('hemu', `echo EMU-BEFORE | dd of=/dev/hda bs=512 conv=fsync,notrunc 2>/dev/null`);
    await xn.consoleRun('hpv', `echo PV-BEFORE | dd of=/dev/hda bs=512 conv=fsync,notrunc 2>/dev/null`);
    const uptime = async (con: XlConsole) => Number(/^(\d+\.\d+)/m.exec(await con.run('cat /proc/uptime'))![1]);
    const before = Number(/(\d+\.\d+)/.exec(await xn.consoleRun('hemu', 'cat /proc/uptime'))![1]);

    const killedAt = Date.now();
    await killDom0(() => process.kill(dom0Pid(xn), 'SIGKILL'));
    // Pings answered again, within seconds of the kill.
    for (const ip of [EMU_IP, PV_IP]) await xn.waitFor(`${ip} to answer pings again`, () => lan.ping(ip, 1), 15_000);
    const outage = (Date.now() - killedAt) / 1000;
    console.log(`HVM guests answer pings again ${outage.toFixed(1)} s after kill -9 of dom0`);
    expect(outage).toBeLessThan(12);

    // Same domains, same stub domain processes, never crashed.
    const rows = await xn.list();
    for (const name of ['hemu', 'hpv'] as const) {
      expect(rows.find((r) => r.name === name)?.id).toBe(ids[name]);
      expect(alive(traces[name].pid)).toBe(true);
      expect(xn.log()).toMatch(new RegExp(`took over domain ${ids[name]} "${name}" after dom0 restarted`));
    }
    expect(xn.log()).not.toMatch(/"hemu" crashed|"hpv" crashed/);
    expect(readFileSync(emuDisk).subarray(0, 10).toString()).toBe('EMU-BEFORE');
    expect(readFileSync(pvDisk).subarray(0, 9).toString()).toBe('PV-BEFORE');

    // xl console on a terminal reaches the serial shell: the guest's uptime went on (no reboot),
    // and it writes on through the emulated disk.
    const con = new XlConsole(xn, 'hemu').attach();
    try {
      expect(await uptime(con)).toBeGreaterThan(before);
      await con.run('echo EMU-AFTER | dd of=/dev/hda bs=512 seek=1 conv=fsync,notrunc 2>/dev/null');
    } finally {
      con.close();
    }
    expect(readFileSync(emuDisk).subarray(512, 521).toString()).toBe('EMU-AFTER');
    // The PV-on-HVM guest's blkfront reconnected as a PV guest's does.
    const pvCon = new XlConsole(xn, 'hpv').attach();
    try {
      await pvCon.run('echo PV-AFTER | dd of=/dev/hda bs=512 seek=1 conv=fsync,notrunc 2>/dev/null');
    } finally {
      pvCon.close();
    }
    expect(readFileSync(pvDisk).subarray(512, 520).toString()).toBe('PV-AFTER');

    // Its VNC display still answers.
    const vnc = await RfbClient.connect(Number(await xs(`/local/domain/${ids.hemu}/console/vnc-port`)));
    try {
      expect(vnc.width).toBeGreaterThan(0);
    } finally {
      vnc.close();
    }

    // xl destroy and xl shutdown work, and leave nothing of the stub domains behind.
    await xn.xlOk('destroy', 'hemu');
    await xn.xlOk('shutdown', '-w', 'hpv');
    for (const name of ['hemu', 'hpv'] as const) {
      await xn.waitFor(`${name}'s stub domain to be gone`, () => leftOf(traces[name]).length === 0, 10_000).catch(() => {});
      expect(leftOf(traces[name]), name).toEqual([]);
    }
    expect((await xn.list()).map((r) => r.name)).toEqual(['Domain-0']);
  }, 240_000);

  it('what happens while no dom0 listens is acted on by the next: a power-off (on_poweroff), a reboot (on_reboot), a stub domain killed (on_crash)', async () => {
    await boot('hoff', []);
    await boot('hboot', [`on_reboot = 'destroy'`]);
    await boot('hdie', []);
    const names = ['hoff', 'hboot', 'hdie'] as const;
    const id = { hoff: await domid('hoff'), hboot: await domid('hboot'), hdie: await domid('hdie') };
    const traces = { hoff: await stubdomTraces('hoff'), hboot: await stubdomTraces('hboot'), hdie: await stubdomTraces('hdie') };
    // Two guests power off and reboot shortly; dom0 is stopped before, then killed: no dom0
    // hears either.
    await xn.consoleRun('hoff', '(sleep 2; poweroff) >/dev/null 2>&1 & true');
    await xn.consoleRun('hboot', '(sleep 2; reboot) >/dev/null 2>&1 & true');
    const old = dom0Pid(xn);
    process.kill(old, 'SIGSTOP');
    try {
      await xn.waitFor('the guests to power off and reboot', () => xn.log().includes(`d${id.hoff}: requested shutdown (poweroff)`) && xn.log().includes(`d${id.hboot}: requested shutdown (reboot)`), 20_000);
      // The third's stub domain dies meanwhile.
      process.kill(traces.hdie.pid, 'SIGKILL');
    } finally {
      await killDom0(() => process.kill(old, 'SIGKILL'));
    }
    for (const name of names) await xn.waitFor(`${name} to be destroyed`, async () => !(await xn.list()).some((r) => r.name === name), 15_000);
    // The power-off and the reboot were taken as such (not as crashes for want of a dom0), the
    // dead stub domain as a crash.
    for (const name of ['hoff', 'hboot'] as const) expect(xn.log()).toMatch(new RegExp(`took over domain ${id[name]} "${name}" after dom0 restarted`));
    expect(xn.log()).toMatch(/"hoff" shut down \(poweroff\); action destroy/);
    expect(xn.log()).toMatch(/"hboot" shut down \(reboot\); action destroy/);
    expect(xn.log()).toMatch(new RegExp(`device model of domain ${id.hdie} ended: its stub domain died`));
    expect(xn.log()).toMatch(/"hdie" crashed; action destroy/);
    for (const name of names) {
      await xn.waitFor(`${name}'s stub domain to be gone`, () => leftOf(traces[name]).length === 0, 10_000).catch(() => {});
      expect(leftOf(traces[name]), name).toEqual([]);
    }
  }, 180_000);

  it('dom0 dying in a loop stops xenode: the stub domain goes with its guest, nothing of it left', async () => {
    await boot('hlast', []);
    const traces = await stubdomTraces('hlast');
    await killDom0UntilStopped(xn);
    expect(xn.log()).toMatch(/not restarting it again/);
    // No dom0 was left to stop it: the hypervisor's destroy closed its channel, and it cleaned up.
    expect(leftOf({ ...traces, record: '/nonexistent' })).toEqual([]);
  }, 120_000);
});
