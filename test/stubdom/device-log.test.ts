// The device models' log of a guest's mistakes follows the one policy for errors a peer causes:
// every occurrence counted by kind, at most 10 lines per 5 s per device.
import { describe, expect, it } from 'vitest';
import { LimitedLog } from '../../stubdom/device-model/log.js';
import { DEFAULT_BURST, DEFAULT_INTERVAL_MS } from '../../common/log-ratelimit.js';

describe('device model log', () => {
  it('a guest provoking 1,000 errors: all counted by kind, 10 lines per 5 s window, prefixed', () => {
    const lines: string[] = [];
    const log = new LimitedLog({ info() {}, error() {}, warn: (m) => lines.push(m) }, 'piix3-ide');
    const t0 = Date.now();
    for (let i = 0; i < 600; i++) log.warn('busy-cmd', `command 0x20 while busy: ignored (${i})`);
    for (let i = 0; i < 400; i++) log.warn('idnf', `sectors ${i}+1 past the end`);
    const windows = 1 + Math.floor((Date.now() - t0) / DEFAULT_INTERVAL_MS);
    expect(log.count('busy-cmd')).toBe(600);
    expect(log.count('idnf')).toBe(400);
    expect(lines.length).toBeGreaterThanOrEqual(DEFAULT_BURST);
    expect(lines.length).toBeLessThanOrEqual(2 * DEFAULT_BURST * windows); // each line may bring a "suppressed" note
    expect(lines.every((l) => l.startsWith('piix3-ide: '))).toBe(true);
    expect(lines[0]).toBe('piix3-ide: command 0x20 while busy: ignored (0)');
  });
});
