// The KVM vCPU engine with tiny hand-made guests: the exit path through the device model
// (port I/O, string I/O, IN data coming back), faults (triple fault, halting forever, writes
// to unbacked addresses), pause/unpause, vcpu-list times, and that every test leaves no
// thread, fd or mapping behind.
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../native/index.js';
import type { KvmVmEvent } from '../../hypervisor/kvm/vm.js';
import { LinuxVm } from '../../hypervisor/kvm/run-vm.js';
import { Asm, TINY_ENTRY, tinyBzImage, userModeSetup, kvmMustRunButCannot, kvmSkipReason } from './helpers.js';

const skip = kvmSkipReason();
const mustFail = kvmMustRunButCannot();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fdCount = () => readdirSync('/proc/self/fd').length;
const threadCount = () => readdirSync('/proc/self/task').length;

function nextEvent(vm: LinuxVm, type: KvmVmEvent['type'], timeoutMs: number): Promise<KvmVmEvent> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${type} event within ${timeoutMs} ms (state ${vm.vm.state})`)), timeoutMs);
    vm.on('event', (e: KvmVmEvent) => {
      if (e.type === type) {
        clearTimeout(t);
        resolve(e);
      }
    });
  });
}

function debugLines(vm: LinuxVm): string[] {
  const lines: string[] = [];
  vm.on('event', (e: KvmVmEvent) => e.type === 'debug' && lines.push(e.text));
  return lines;
}

async function waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A tiny kernel whose code first drops to ring 3 via the registers we set (see userModeSetup),
 * so it runs natively even where KVM emulates guest ring 0. */
function startTiny(code: Asm, opts: { user?: boolean; forwardAll?: boolean; vcpus?: number } = {}): Promise<LinuxVm> {
  return LinuxVm.start({
    name: 'tiny',
    kernel: tinyBzImage(code.build()),
    cmdline: '',
    memoryMiB: 32,
    vcpus: opts.vcpus ?? 1,
    forwardAll: opts.forwardAll,
    beforeStart: opts.user
      ? (vm) => {
          const u = userModeSetup(new Uint8Array(vm.memory));
          native().kvm.setSregs(vm.vcpuHandles[0]!, u.sregs);
          native().kvm.setRegs(vm.vcpuHandles[0]!, { rflags: u.rflags, rsp: 0x80000 });
        }
      : undefined,
  });
}

describe.skipIf(skip !== '' && mustFail === '')(`KVM engine${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let vm: LinuxVm | null = null;
  afterEach(async () => {
    await vm?.destroy();
    vm = null;
  });

  it('has a usable /dev/kvm under CI', () => {
    expect(mustFail).toBe('');
  });

  it('forwards port I/O to the device model and brings IN data back', async () => {
    // UART scratch register round trip, then a rep outsb of a string to the UART's THR
    // (string I/O travels as one data_is_ptr ioreq through the bounce page).
    const msg = 'hello from the guest via rep outsb\n';
    const a = new Asm(TINY_ENTRY);
    a.movDx(0x3ff).movAl(0x5a).outDxAl().movAl(0).inAlDx().cmpAl(0x5a).jnz('bad');
    a.debug('scratch ok\n');
    a.movDx(0x3f8).movEsi(0).movEcx(msg.length); // rsi patched below
    const patchAt = a.bytes.length - 9; // the movEsi immediate
    a.repOutsb().debug('done\n').haltForever();
    a.label('bad').debug('scratch BAD\n').haltForever();
    const strAddr = 0x100000 + 0x200 + a.bytes.length;
    a.emit(...Buffer.from(msg));
    a.bytes.splice(patchAt, 4, strAddr & 0xff, (strAddr >> 8) & 0xff, (strAddr >> 16) & 0xff, strAddr >>> 24);
    vm = await startTiny(a);
    const lines = debugLines(vm);
    await vm.waitFor('hello from the guest via rep outsb', 30_000);
    await waitUntil(() => lines.includes('done'), 30_000, 'done');
    expect(lines).toEqual(['scratch ok', 'done']);
    const s = vm.exitStats();
    expect(s.ioreqs).toBeGreaterThanOrEqual(3);
    expect(s.internal).toBeGreaterThan(0); // the 0xE9 debug port is the engine's own
  });

  it('reports a triple-faulting kernel as crashed, not hung', async () => {
    const a = new Asm(TINY_ENTRY).debug('about to fault\n').ud2(); // #UD with no IDT: #GP, #DF, triple fault
    vm = await startTiny(a);
    const crashed = nextEvent(vm, 'crash', 30_000);
    const e = await crashed;
    expect(e.type).toBe('crash');
    expect((e as { detail: string }).detail).toMatch(/triple fault/);
    expect(vm.vm.state).toBe('crashed');
    const t0 = Date.now();
    await vm.destroy();
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('stops a guest that halts forever (interrupts off), with pause and vcpu-list on the way', async () => {
    const a = new Asm(TINY_ENTRY).debug('halting\n').haltForever();
    vm = await startTiny(a);
    const lines = debugLines(vm);
    await waitUntil(() => lines.includes('halting'), 30_000, 'the guest to halt');
    expect(vm.vm.vcpuInfo()).toHaveLength(1);
    // Halted in the kernel: blocked, not burning a CPU. The vCPU thread reaches HLT a moment
    // after its last debug line, later on a loaded machine, so wait for it (bounded).
    await waitUntil(() => vm!.vm.vcpuInfo()[0]!.state === 'b', 5000, 'the vCPU to block in HLT');
    await vm.vm.pause();
    expect(vm.vm.vcpuInfo()[0]!.state).toBe('p');
    vm.vm.unpause();
    const t0 = Date.now();
    await vm.destroy();
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(vm.vm.state).toBe('destroyed');
  });

  it('pauses and unpauses a busy guest; its CPU time grows only while running', async () => {
    const counter = 0x3000;
    const a = new Asm(TINY_ENTRY).label('loop').incMem(counter).jmp('loop');
    vm = await startTiny(a, { user: true });
    const mem = new BigUint64Array(vm.vm.memory, counter, 1);
    await waitUntil(() => mem[0]! > 1000n, 10_000, 'the counter to move');
    await vm.vm.pause();
    const c1 = mem[0]!;
    const t1 = vm.vm.vcpuInfo()[0]!.cpuTimeSec;
    await sleep(200);
    expect(mem[0]).toBe(c1);
    expect(vm.vm.vcpuInfo()[0]!.cpuTimeSec - t1).toBeLessThan(0.05);
    vm.vm.unpause();
    await waitUntil(() => mem[0]! > c1 + 1000n, 10_000, 'the counter to move again');
    await sleep(200);
    const info = vm.vm.vcpuInfo()[0]!;
    expect(info.state).toBe('r');
    expect(info.cpuTimeSec).toBeGreaterThan(t1);
  });

  it('survives a guest writing to unbacked addresses and flooding the device model', async () => {
    // Writes into the MMIO hole (no RAM, no device), then a port I/O storm at the device
    // model's UART scratch register; dom0 (this process) stays responsive throughout.
    const a = new Asm(TINY_ENTRY);
    a.emit(0xbf, 0x00, 0x00, 0x00, 0x20); // mov edi, 0x20000000: mapped, but no RAM behind it
    a.movEcx(2000).label('w').emit(0x89, 0x0f).decEcx().jnz('w'); // mov [rdi], ecx
    a.debug('unbacked done\n');
    a.movDx(0x3ff).label('flood').outDxAl().jmp('flood');
    vm = await startTiny(a, { user: true, forwardAll: true });
    const lines = debugLines(vm);
    await waitUntil(() => lines.includes('unbacked done'), 30_000, 'the unbacked writes');
    const before = vm.exitStats().ioreqs;
    // the event loop still turns quickly while the guest floods
    const t0 = Date.now();
    for (let i = 0; i < 20; i++) await sleep(5);
    expect(Date.now() - t0).toBeLessThan(1000);
    await waitUntil(() => vm!.exitStats().ioreqs > before + 1000, 10_000, `the flood (${JSON.stringify(vm!.exitStats())} before ${before}, ${JSON.stringify(vm!.vm.vcpuInfo())})`);
    const s = vm.exitStats();
    expect(s.mmio).toBeGreaterThanOrEqual(2000);
    const t1 = Date.now();
    await vm.destroy();
    expect(Date.now() - t1).toBeLessThan(5000);
  });

  it('runs several vCPUs: the APs wait for INIT/SIPI and are stoppable', async () => {
    const a = new Asm(TINY_ENTRY).debug('bsp up\n').haltForever();
    vm = await startTiny(a, { vcpus: 2 });
    const lines = debugLines(vm);
    await waitUntil(() => lines.includes('bsp up'), 30_000, 'the BSP');
    const info = vm.vm.vcpuInfo();
    expect(info.map((i) => i.id)).toEqual([0, 1]);
    expect(info[1]!.state).toBe('b'); // never started by the guest: waiting in the kernel
    await vm.destroy();
  });

  it('releases its threads and fds', async () => {
    const fds = fdCount();
    const threads = threadCount();
    for (let i = 0; i < 3; i++) {
      const v = await startTiny(new Asm(TINY_ENTRY).debug('x\n').haltForever(), { vcpus: 2 });
      await sleep(50);
      await v.destroy();
    }
    await sleep(200);
    expect(fdCount()).toBeLessThanOrEqual(fds);
    expect(threadCount()).toBeLessThanOrEqual(threads + 1);
  });
});
