// The "echo" diagnostic split device (guest/kernel/frontends/evtchn-echo.ts and
// dom0/backends/evtchn-echo.ts): hot-plugged into a running guest, both ends reach
// Connected, dom0 times event-channel round trips through it, and unplugging closes both ends
// and removes both directories.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, shouldSkip } from '../helpers/instance.js';
import { rpcCall } from '../../dom0/toolstack/rpc.js';

describe.skipIf(shouldSkip())('echo split device', () => {
  const xn = new Instance('echo');
  const rpc = <T = unknown>(cmd: string, args: Record<string, unknown> = {}) => rpcCall<T>(join(xn.dir, 'run', 'toolstack.sock'), cmd, args, 30_000);
  const read = async (path: string) => (await xn.xenstore('xenstore-read', path)).stdout.trim();
  let domid = 0;

  beforeAll(async () => {
    await xn.start();
    domid = await xn.create('echo1');
    await xn.waitForShell('echo1');
  });
  afterAll(() => xn.stop());

  it('connects both ends after device-attach, with the frontend publishing its event channel', async () => {
    await rpc('device-attach', { dom: 'echo1', device: { type: 'echo', devid: 0, backend: {}, frontend: {} } });
    const be = `/local/domain/0/backend/echo/${domid}/0`;
    const fe = `/local/domain/${domid}/device/echo/0`;
    await xn.waitFor('both ends Connected', async () => (await read(`${be}/state`)) === '4' && (await read(`${fe}/state`)) === '4');
    expect(Number(await read(`${fe}/event-channel`))).toBeGreaterThan(0);
  });

  it('times event-channel round trips between dom0 and the guest', async () => {
    const r = await rpc<{ iterations: number; medianUs: number; minUs: number; p90Us: number }>('evtchn-pingpong', { dom: 'echo1', devid: 0, iterations: 500, warmup: 50 });
    expect(r.iterations).toBe(500);
    expect(r.minUs).toBeGreaterThan(0);
    expect(r.medianUs).toBeGreaterThanOrEqual(r.minUs);
    expect(r.p90Us).toBeGreaterThanOrEqual(r.medianUs);
    const stats = await rpc<Record<string, Record<string, number>>>('device-stats');
    expect(stats[`echo/${domid}/0`]!.echoes).toBeGreaterThanOrEqual(550);
  });

  it('refuses bad arguments and unknown devices plainly', async () => {
    await expect(rpc('evtchn-pingpong', { dom: 'echo1', devid: 7, iterations: 10 })).rejects.toThrow(/no echo device 7/);
    await expect(rpc('evtchn-pingpong', { dom: 'echo1', devid: 0, iterations: 0 })).rejects.toThrow(/iterations must be an integer/);
  });

  it('closes both ends and removes both directories on device-detach', async () => {
    await rpc('device-detach', { dom: 'echo1', type: 'echo', devid: 0 });
    expect((await xn.xenstore('xenstore-exists', `/local/domain/0/backend/echo/${domid}/0`)).code).not.toBe(0);
    expect((await xn.xenstore('xenstore-exists', `/local/domain/${domid}/device/echo/0`)).code).not.toBe(0);
    expect(xn.log()).not.toMatch(/echo .* did not close in time/);
    await expect(rpc('evtchn-pingpong', { dom: 'echo1', devid: 0, iterations: 10 })).rejects.toThrow(/no echo device/);
  });
});
