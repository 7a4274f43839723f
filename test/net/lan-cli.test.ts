// `xenode lan up|status|exec|down` and `xenode uplink` (plan only): the commands a user types.
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Instance } from '../helpers/instance.js';
import { leftovers, netShouldSkip } from '../helpers/lan.js';

describe.skipIf(netShouldSkip())('xenode lan and xenode uplink', () => {
  const xn = new Instance('lancli');
  const args = ['--bridge', 'xnbr-cli', '--name', 'xnlan-cli'];
  afterAll(async () => {
    await xn.xenode('lan', 'down', ...args);
    await xn.stop();
  });

  it('brings a LAN host up on a bridge made for it, runs tools there, and takes it all down', async () => {
    const up = await xn.xenode('lan', 'up', ...args);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain('LAN xnlan-cli: up on bridge xnbr-cli, host 198.18.0.1/15, DHCP 198.18.0.100-198.18.0.199');
    expect(existsSync('/sys/class/net/xnbr-cli/bridge')).toBe(true);
    const st = await xn.xenode('lan', 'status', '--name', 'xnlan-cli');
    expect(st.stdout).toContain('up on bridge xnbr-cli');
    const ex = await xn.xenode('lan', 'exec', '--name', 'xnlan-cli', '--', 'ip', '-4', '-o', 'addr', 'show', 'dev', 'lan0');
    expect(ex.code).toBe(0);
    expect(ex.stdout).toContain('198.18.0.1/15');
    const again = await xn.xenode('lan', 'up', ...args);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('already exists');
    const down = await xn.xenode('lan', 'down', '--name', 'xnlan-cli');
    expect(down.code).toBe(0);
    expect(existsSync('/sys/class/net/xnbr-cli')).toBe(false);
    expect(leftovers('cli')).toEqual([]);
  });

  it('xenode uplink only prints its plan and warning without --yes', async () => {
    const dev = /dev (\S+)/.exec(execFileSync('ip', ['route', 'show', 'default'], { encoding: 'utf8' }))?.[1] ?? 'lo';
    const before = execFileSync('ip', ['-o', 'addr', 'show', 'dev', dev], { encoding: 'utf8' });
    const r = await xn.xenode('uplink', 'xnbr-upl', dev);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${dev} becomes a port of xnbr-upl`);
    expect(r.stdout).toContain(`ip link set dev ${dev} master xnbr-upl`);
    expect(r.stdout).toContain('Nothing changed');
    expect(existsSync('/sys/class/net/xnbr-upl')).toBe(false);
    expect(execFileSync('ip', ['-o', 'addr', 'show', 'dev', dev], { encoding: 'utf8' })).toBe(before);
  });
});
