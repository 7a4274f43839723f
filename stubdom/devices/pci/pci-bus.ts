// PCI bus 0 of the emulated PC: functions by device/function number, config-space routing
// (absent functions read all ones, as a master-aborted config cycle does), BAR mapping into
// the machine's I/O and MMIO buses whenever a BAR or the command register changes, and INTx
// routing through the PIIX3's PIRQ registers to ISA IRQ lines.
import { AddressBus, BusConflictError } from '../../device-model/address-bus.js';
import type { PciConfigTarget } from '../../device-model/ioreq-dispatch.js';
import type { IrqLines } from '../../device-model/interrupts.js';
import { LimitedLog, type DeviceLogger, defaultLogger } from '../../device-model/log.js';
import { PCI_INTERRUPT_PIN } from './constants.js';
import type { PciFunction } from './pci-function.js';

/** Maps PIRQ A..D (0..3) to an ISA IRQ line or null (routing disabled). */
export type PirqRouter = (pirq: number) => number | null;

export class PciBus implements PciConfigTarget {
  private readonly fns = new Map<number, PciFunction>();
  private router: PirqRouter = () => null;
  private readonly log: LimitedLog;

  constructor(
    readonly pio: AddressBus,
    readonly mmio: AddressBus,
    readonly irqs: IrqLines,
    log?: DeviceLogger,
  ) {
    this.log = new LimitedLog(log ?? defaultLogger('stubdom'), 'pci');
  }

  /** Plugs `f` in at 00:dev.fn. */
  attach(f: PciFunction, dev: number, fn: number): void {
    if (!Number.isInteger(dev) || dev < 0 || dev > 31 || !Number.isInteger(fn) || fn < 0 || fn > 7) throw new RangeError('bad PCI slot');
    const devfn = (dev << 3) | fn;
    if (this.fns.has(devfn)) throw new Error(`PCI slot 00:${dev.toString(16).padStart(2, '0')}.${fn} is taken`);
    f.dev = dev;
    f.fn = fn;
    f.hooks = this;
    f.irq = this.irqs.source(this.intxLine(f), f.name);
    this.fns.set(devfn, f);
    this.remap(f);
  }

  /** Unplugs `f` (Xen platform unplug, hot-unplug): its BARs stop decoding, its INTx drops. */
  detach(f: PciFunction): void {
    const devfn = (f.dev << 3) | f.fn;
    if (this.fns.get(devfn) !== f) return;
    this.fns.delete(devfn);
    for (let i = 0; i < 6; i++) this.unmapBar(f, i);
    f.irq?.set(false);
    f.irq?.moveTo(null);
    f.hooks = undefined;
  }

  functionAt(dev: number, fn: number): PciFunction | undefined {
    return this.fns.get(((dev & 0x1f) << 3) | (fn & 7));
  }

  functions(): PciFunction[] {
    return [...this.fns.values()];
  }

  configRead(bus: number, dev: number, fn: number, reg: number, size: number): number {
    const f = bus === 0 ? this.functionAt(dev, fn) : undefined;
    if (!f || reg < 0 || reg + size > 256 || (reg & (size - 1)) !== 0) return size >= 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
    return f.configRead(reg, size);
  }

  configWrite(bus: number, dev: number, fn: number, reg: number, size: number, value: number): void {
    const f = bus === 0 ? this.functionAt(dev, fn) : undefined;
    if (!f || reg < 0 || reg + size > 256 || (reg & (size - 1)) !== 0) return;
    f.configWrite(reg, size, value);
  }

  /** Installs the PIRQ router (the PIIX3 ISA bridge) and re-routes every function. */
  setPirqRouter(router: PirqRouter): void {
    this.router = router;
    this.reroute();
  }

  /** PIRQ (0..3) that INTx of `f` reaches: QEMU's PIIX swizzle, (slot - 1 + pin - 1) & 3. */
  static pirqOf(dev: number, pin: number): number {
    return (dev - 1 + pin - 1) & 3;
  }

  /** ISA line the function's INTx pin is routed to right now. */
  intxLine(f: PciFunction): number | null {
    const pin = f.config[PCI_INTERRUPT_PIN]!;
    if (pin < 1 || pin > 4) return null;
    return this.router(PciBus.pirqOf(f.dev, pin));
  }

  /** Re-evaluates INTx routing after a PIRQ register change. */
  reroute(): void {
    for (const f of this.fns.values()) f.irq?.moveTo(this.intxLine(f));
  }

  private unmapBar(f: PciFunction, i: number): void {
    const r = f.barRegions[i];
    if (!r) return;
    (f.bars[i]!.kind === 'io' ? this.pio : this.mmio).unregister(r);
    f.barRegions[i] = null;
  }

  /** Brings the function's BAR mappings in line with its BAR registers and command bits. */
  remap(f: PciFunction): void {
    if (f.hooks !== this) return;
    for (let i = 0; i < 6; i++) {
      const spec = f.bars[i];
      if (!spec) continue;
      const want = f.barDecodes(i);
      const addr = f.barAddress(i);
      const cur = f.barRegions[i];
      if (cur && want && cur.base === addr) continue;
      this.unmapBar(f, i);
      if (!want) continue;
      const bus = spec.kind === 'io' ? this.pio : this.mmio;
      try {
        f.barRegions[i] = bus.register(addr, spec.size, spec.handler, `${f.name} BAR${i}`, f.exitCounter);
      } catch (e) {
        // Real hardware would decode both and fight on the bus; we keep the first owner and
        // leave this BAR dark until it is moved somewhere free.
        if (e instanceof BusConflictError || e instanceof RangeError) this.log.warn('bar-conflict', `${f.name}: BAR${i} not mapped: ${e.message}`);
        else throw e;
      }
    }
  }
}
