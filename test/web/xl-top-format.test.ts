// xl top's output against xentop's printf formats (tools/xentop/xentop.c), from readings made
// by hand: column widths, state letters, CPU% from two readings, widening columns, -n/-x lines,
// and its option errors.
import { describe, it, expect } from 'vitest';
import { formatTop, parseTopArgs, xentopState } from '../../dom0/toolstack/xl/commands/top.js';
import type { CounterReading, DomainCounters } from '../../dom0/toolstack/domain-counters.js';
import type { HostInfo } from '../../drivers/hypercall/ops.js';

const host = { totalMemoryMiB: 1024, freeMemoryMiB: 512, nrCpus: 2, xenMajor: 4, xenMinor: 17, xenExtra: '-xenode' } as HostInfo;

function dom(over: Partial<DomainCounters>): DomainCounters {
  return {
    domid: 1, name: 'web', uuid: '', label: '', running: true, blocked: false, paused: false, shutdown: false, crashed: false, dying: false, shutdownReason: null,
    memKiB: 131072, maxMemKiB: 262144, targetKiB: 131072, vcpus: 2, onlineVcpus: 2, cpuTimeNs: 12.7e9, startTimeMs: 1, pid: 0, weight: 256, cap: 0, vcpuAffinity: [],
    vifs: [{ devid: 0, txBytes: 2_048_000, txPackets: 30, txDrops: 1, rxBytes: 1024, rxPackets: 4, rxDrops: 0 }],
    vbds: [{ devid: 51712, ooReq: 0, rdReq: 5, wrReq: 7, rdSect: 40, wrSect: 56, errors: 0 }],
    ...over,
  };
}

const reading = (at: number, domains: DomainCounters[]): CounterReading => ({ at, host, domains });
const opts = { networks: false, vbds: false, vcpus: false, repeatHeader: false, fullName: false, dom0First: false };
const HEADER = '      NAME  STATE   CPU(sec) CPU(%)     MEM(k) MEM(%)  MAXMEM(k) MAXMEM(%) VCPUS NETS NETTX(k) NETRX(k) VBDS   VBD_OO   VBD_RD   VBD_WR  VBD_RSECT  VBD_WSECT SSID';

describe('xl top (xentop) formats', () => {
  it('prints the header and a row column for column, CPU% from two readings', () => {
    const prev = reading(0, [dom({ cpuTimeNs: 10e9 })]);
    const cur = reading(3000, [dom({})]);
    const lines = formatTop(prev, cur, opts).split('\n');
    expect(lines[0]).toBe(HEADER);
    expect(lines[1]).toBe('       web -----r         12   90.0     131072   12.5     262144      25.0     2    1     2000        1    1        0        5        7         40         56    0');
    // No earlier reading: 0.0, as xentop's first screen.
    expect(formatTop(null, cur, opts).split('\n')[1]).toContain('   12    0.0 ');
  });

  it('truncates names to 10 unless -f, widens counter columns, sorts by name', () => {
    const big = dom({ domid: 2, name: 'averyveryverylongname', vifs: [{ devid: 0, txBytes: 2 ** 40, txPackets: 0, txDrops: 0, rxBytes: 0, rxPackets: 0, rxDrops: 0 }] });
    const out = formatTop(null, reading(0, [big, dom({ name: 'Alpha' })]), opts).split('\n');
    // NETTX(k) is 10 wide now (1073741824 KiB), as adjust_field_widths makes it.
    expect(out[0]).toContain(' NETS   NETTX(k) NETRX(k) VBDS');
    expect(out[1]!.startsWith('     Alpha ')).toBe(true);
    expect(out[2]!.startsWith('averyveryv ')).toBe(true);
    expect(out[2]).toContain(' 1073741824 ');
    const full = formatTop(null, reading(0, [big]), { ...opts, fullName: true }).split('\n');
    expect(full[1]!.startsWith('averyveryverylongname ')).toBe(true);
    expect(full[0]!.startsWith('                 NAME ')).toBe(true);
  });

  it('state letters are xentop\'s d s b c p r', () => {
    expect(xentopState(dom({ running: false, blocked: true }))).toBe('--b---');
    expect(xentopState(dom({ running: false, paused: true }))).toBe('----p-');
    expect(xentopState(dom({ running: false, shutdown: true, shutdownReason: 'crash' }))).toBe('-s-c--');
    expect(xentopState(dom({ running: false, dying: true }))).toBe('d-----');
  });

  it('-n, -x and -v add xentop\'s detail lines', () => {
    const out = formatTop(null, reading(0, [dom({})]), { ...opts, networks: true, vbds: true, vcpus: true }).split('\n');
    expect(out[2]).toBe('VCPUs(sec):   0:          6s  1:          6s');
    expect(out[3]).toBe('Net0 RX:     1024bytes        4pkts        0err        0drop  TX:  2048000bytes       30pkts        0err        1drop');
    expect(out[4]).toBe('VBD BlkBack 51712 [ca: 0]  OO:        0   RD:        5   WR:        7   RSECT:         40   WSECT:         56');
  });

  it('parses xentop\'s options and names a bad one', () => {
    expect(parseTopArgs(['-b', '-i', '2', '-d1'])).toMatchObject({ batch: true, iterations: 2, delaySec: 1 });
    expect(parseTopArgs(['--batch', '--iterations=3', '-nx'])).toMatchObject({ batch: true, iterations: 3, networks: true, vbds: true });
    expect(() => parseTopArgs(['-i', 'x'])).toThrow(/iterations \(-i\)/);
    expect(() => parseTopArgs(['-d', '0'])).toThrow(/delay \(-d\)/);
    expect(() => parseTopArgs(['-q'])).toThrow(/unknown option -q/);
    expect(() => parseTopArgs(['dom1'])).toThrow(/unexpected argument/);
  });
});
