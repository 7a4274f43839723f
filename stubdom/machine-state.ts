// A PcMachine's saved state (docs/kvm.md, "Save, restore, migration"): every device model of
// the emulated PC in one blob (device-model/device-state.ts), what qemu-dm's savevm gives Xen:
//
//   machine    the shape (NICs, disks, serial ports, VGA, i8042, platform device), the Xen
//              platform unplugs done, the 0xCF8 address latch, and the interrupt lines' levels
//   pci.host   i440FX config space        pci.isa   PIIX3 config (PIRQ routes)
//   ide        PIIX3 IDE: config, both channels, drives with a request in flight, bus masters
//   vga        standard VGA             platform  Xen platform device
//   nic.<devid> RTL8139 per emulated NIC   com1, com2   16550s      i8042   keyboard controller
//
// Loading checks the machine's shape first (the restored domain is built from the same
// config), then each device checks its own fields before taking them; in the end the
// interrupt lines the devices drive must be the lines that were asserted when saved.
import { DeviceStateError, StateReader, StateWriter } from './device-model/device-state.js';
import type { PcMachine } from './machine.js';

const VERSION = 1;
const IRQ_LINES = 24;

function shape(m: PcMachine): { nics: number[]; disks: number; serials: number; vga: boolean; i8042: boolean; platform: boolean } {
  let disks = 0;
  m.ide.channels.forEach((c, ci) => c.drives.forEach((d, u) => (disks |= d ? 1 << (ci * 2 + u) : 0)));
  return { nics: m.nics.map((n) => n.devid), disks, serials: m.serials.length, vga: !!m.vga, i8042: !!m.i8042, platform: !!m.platform };
}

function lineLevels(m: PcMachine): Uint8Array {
  return Uint8Array.from({ length: IRQ_LINES }, (_, i) => (m.irqs.level(i) ? 1 : 0));
}

export function saveMachine(m: PcMachine): Uint8Array {
  const w = new StateWriter();
  const s = shape(m);
  w.section('machine', VERSION, (f) => {
    f.bytes('nics', Uint8Array.from(s.nics)).u8('disks', s.disks).u8('serials', s.serials).bool('vga', s.vga).bool('i8042', s.i8042).bool('platform', s.platform);
    f.u32('unplugged', m.platform?.metrics.unplugMask ?? 0).u32('pciAddress', m.pciConfig.address).u8('resetControl', m.pciConfig.resetControl);
    f.bytes('irqLines', lineLevels(m));
  });
  w.section('pci.host', VERSION, (f) => m.hostBridge.savePciState(f));
  w.section('pci.isa', VERSION, (f) => m.isa.savePciState(f));
  w.section('ide', VERSION, (f) => m.ide.saveState(f));
  if (m.vga) w.section('vga', VERSION, (f) => m.vga!.saveState(f));
  if (m.platform) w.section('platform', VERSION, (f) => (m.platform!.savePciState(f), f.u8('flags', m.platform!.flags)));
  for (const { devid, nic } of m.nics) w.section(`nic.${devid}`, VERSION, (f) => nic.saveState(f));
  m.serials.forEach((u, i) => w.section(`com${i + 1}`, VERSION, (f) => u.saveState(f)));
  if (m.i8042) w.section('i8042', VERSION, (f) => m.i8042!.saveState(f));
  return w.finish();
}

/** Parses and checks the blob's structure and the machine's shape (no device touched). */
export function checkMachineState(m: PcMachine, buf: Uint8Array): StateReader {
  const r = new StateReader(buf);
  const f = r.section('machine', VERSION);
  const s = shape(m);
  const nics = Array.from(f.bytes('nics', undefined, 32));
  const disks = f.u8('disks', 0x0f);
  const serials = f.u8('serials', 2);
  const vga = f.bool('vga');
  const i8042 = f.bool('i8042');
  const platform = f.bool('platform');
  const differs = (what: string, saved: unknown, now: unknown) => {
    if (JSON.stringify(saved) !== JSON.stringify(now)) throw new DeviceStateError(`device state: the saved machine's ${what} (${JSON.stringify(saved)}) is not this config's (${JSON.stringify(now)})`);
  };
  differs('emulated NICs', nics, s.nics);
  differs('IDE drives', disks, s.disks);
  differs('serial ports', serials, s.serials);
  differs('VGA', vga, s.vga);
  differs('keyboard controller', i8042, s.i8042);
  differs('Xen platform device', platform, s.platform);
  f.u32('unplugged', 0xf);
  f.u32('pciAddress');
  f.u8('resetControl');
  f.bytes('irqLines', IRQ_LINES, IRQ_LINES);
  f.end();
  return r;
}

/** Loads a saved state into a machine just built from the same config (before it serves any
 * ioreq). Throws DeviceStateError naming the device and field; the caller then discards the
 * machine (and the domain): nothing half-restored runs. */
export function loadMachine(m: PcMachine, buf: Uint8Array): void {
  checkMachineState(m, buf);
  const r = new StateReader(buf);
  const f = r.section('machine', VERSION);
  f.bytes('nics');
  f.u8('disks');
  f.u8('serials');
  f.bool('vga');
  f.bool('i8042');
  f.bool('platform');
  const unplugged = f.u32('unplugged');
  const pciAddress = f.u32('pciAddress');
  const resetControl = f.u8('resetControl');
  const lines = f.bytes('irqLines', IRQ_LINES);
  f.end();
  // The guest's PV drivers took over some devices: they are gone from this machine too.
  if (unplugged) m.unplug(unplugged);
  m.pciConfig.address = pciAddress;
  m.pciConfig.resetControl = resetControl;
  const pci = (name: string, fn: { loadPciState(r: ReturnType<StateReader['section']>): void }) => {
    const s = r.section(name, VERSION);
    fn.loadPciState(s);
    s.end();
  };
  pci('pci.host', m.hostBridge);
  pci('pci.isa', m.isa);
  m.pci.reroute();
  m.ide.loadState(r.section('ide', VERSION));
  if (m.vga) m.vga.loadState(r.section('vga', VERSION));
  if (m.platform) {
    const s = r.section('platform', VERSION);
    m.platform.loadPciState(s);
    m.platform.flags = s.u8('flags', 1);
    s.end();
  }
  for (const { devid, nic } of m.nics) nic.loadState(r.section(`nic.${devid}`, VERSION));
  m.serials.forEach((u, i) => u.loadState(r.section(`com${i + 1}`, VERSION)));
  if (m.i8042) m.i8042.loadState(r.section('i8042', VERSION));
  r.end();
  const now = lineLevels(m);
  for (let i = 0; i < IRQ_LINES; i++) {
    if (now[i] !== lines[i]) throw new DeviceStateError(`device state: interrupt line ${i} was ${lines[i] ? 'asserted' : 'deasserted'} when saved, the restored devices drive it ${now[i] ? 'high' : 'low'}`);
  }
}
