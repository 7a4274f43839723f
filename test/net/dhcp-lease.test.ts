// A DHCP lease is kept for as long as the guest runs: with the LAN's dnsmasq handing out
// 2-minute leases (its minimum), the guest kernel asks for an extension at half time, and the
// server's lease file shows the new expiry. (Linux's own ip=dhcp never renews; a guest that
// did not would lose its address to the next host after two minutes.)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance } from '../helpers/instance.js';
import { TestLan, netShouldSkip } from '../helpers/lan.js';

const MAC = '00:16:3e:38:d4:31';

describe.skipIf(netShouldSkip())('DHCP lease renewal', () => {
  const xn = new Instance('dhcpl');
  const lan = new TestLan('dhcpl', xn.dir, { leaseTime: '2m' });
  const expiry = (): number => {
    for (const line of readFileSync(join(xn.dir, 'lan', 'dnsmasq.leases'), 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[1] === MAC) return Number(f[0]);
    }
    return 0;
  };

  beforeAll(async () => {
    await xn.start();
    await lan.up();
  }, 60_000);

  afterAll(async () => {
    await xn.stop();
    lan.down();
  }, 60_000);

  it('the guest extends its lease at half time and keeps its address', async () => {
    const cfg = xn.config('leased', `name = "leased"\ntype = "pv"\nmemory = 128\nvcpus = 1\nextra = "console=hvc0 ip=dhcp"\nvif = [ 'bridge=${lan.bridge},mac=${MAC}' ]\n`);
    await xn.xlOk('create', cfg);
    await xn.waitForShell('leased', 30_000);
    const first = expiry();
    expect(first).toBeGreaterThan(0);
    const address = lan.leases().find((l) => l.mac === MAC)!.address;
    // T1 = 60 s after the lease was granted.
    await xn.waitFor('the renewed lease', () => expiry() >= first + 30, 90_000);
    expect(lan.leases().find((l) => l.mac === MAC)!.address).toBe(address);
    expect(await xn.consoleRun('leased', 'ip -o -4 addr show eth0')).toContain(`${address}/15`);
    expect(lan.ping(address, 2)).toBe(true);
  }, 150_000);
});
