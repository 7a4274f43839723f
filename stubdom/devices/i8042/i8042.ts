// The PC's keyboard controller, an Intel 8042 (QEMU hw/input/pckbd.c): data port 0x60, status
// and command port 0x64, the keyboard on IRQ 1 and the mouse (aux port) on IRQ 12.
//
//   status   bit 0 output buffer full, 1 input buffer full (never: commands complete at once),
//            2 system flag, 3 last write was a command, 4 keyboard not inhibited, 5 the byte in
//            the output buffer is from the mouse
//   commands 0x20 read / 0x60 write the command byte (bit 0 keyboard IRQ, 1 mouse IRQ, 2 system
//            flag, 4 keyboard disabled, 5 mouse disabled, 6 translate set 2 to set 1),
//            0xA7/0xA8 mouse off/on, 0xA9 and 0xAB interface tests (00), 0xAA self-test (55),
//            0xAD/0xAE keyboard off/on, 0xC0 input port, 0xD0/0xD1 output port (bit 0 low =
//            reset), 0xD2/0xD3 write to the keyboard's / mouse's output buffer, 0xD4 next byte
//            to the mouse, 0xFE (and 0xF0-0xFF with bit 0 clear) pulse the reset line
//
// The command byte starts as a PC's BIOS leaves it: both interrupts on, system flag, translation
// on (0x47), so a driver that only reads port 0x60 gets set 1 codes. Output is one byte at a
// time: reading 0x60 empties the buffer and the next byte (controller replies first, then the
// keyboard, then the mouse) is loaded, raising its IRQ again. Queues are bounded; the guest
// not reading its keyboard only drops keys.
import { readRegisters, writeRegisters, type FieldReader, type FieldWriter } from '../../device-model/device-state.js';
import type { IoHandler } from '../../device-model/address-bus.js';
import type { IrqSource } from '../../device-model/interrupts.js';
import { ByteQueue } from './byte-queue.js';
import { Ps2Keyboard } from './ps2-keyboard.js';
import { Ps2Mouse } from './ps2-mouse.js';
import { SET2_TO_SET1 } from './scancodes.js';

export const I8042_DATA_PORT = 0x60;
export const I8042_STATUS_PORT = 0x64;
export const I8042_KBD_IRQ = 1;
export const I8042_AUX_IRQ = 12;

const STAT_OBF = 0x01;
const STAT_SYS = 0x04;
const STAT_CMD = 0x08;
const STAT_UNLOCKED = 0x10;
const STAT_AUX_OBF = 0x20;
const MODE_KBD_INT = 0x01;
const MODE_AUX_INT = 0x02;
const MODE_SYS = 0x04;
const MODE_KBD_DISABLED = 0x10;
const MODE_AUX_DISABLED = 0x20;
const MODE_XLATE = 0x40;
const DEFAULT_MODE = MODE_KBD_INT | MODE_AUX_INT | MODE_SYS | MODE_XLATE;

export interface I8042Metrics {
  exits: number;
  keys: number;
  pointer: number;
  reads: number;
  dropped: number;
  interrupts: number;
}

const I8042_REGISTERS = ['mode', 'status', 'outByte', 'pendingCmd', 'outputPort', 'breakPrefix'] as const;
const KBD_REGISTERS = ['pending', 'scanning', 'leds', 'keys'] as const;
const MOUSE_REGISTERS = ['pending', 'reporting', 'rate', 'resolution', 'scaling', 'buttons', 'packets'] as const; // the last pointer position is a host-side reference only

export class I8042 {
  readonly kbd = new Ps2Keyboard();
  readonly aux = new Ps2Mouse();
  readonly metrics: I8042Metrics = { exits: 0, keys: 0, pointer: 0, reads: 0, dropped: 0, interrupts: 0 };
  private readonly ctrl = new ByteQueue(16);
  private mode = DEFAULT_MODE;
  private status = STAT_UNLOCKED | STAT_SYS;
  private outByte = 0;
  private pendingCmd = 0;
  private outputPort = 0x03;
  /** Set 2 break prefix seen while translating: the next code is a release. */
  private breakPrefix = false;

  constructor(
    private readonly kbdIrq: IrqSource,
    private readonly auxIrq: IrqSource,
    private readonly onReset?: () => void,
  ) {}

  /** Ports 0x60 (offset 0) .. 0x64 (offset 4), registered as one 5-port range. */
  readonly ports: IoHandler = {
    read: (off, size) => {
      const v = off === 0 ? this.readData() : off === 4 ? this.status : 0xff;
      return size === 1 ? v : v | (size >= 4 ? 0xffffff00 : 0xff00);
    },
    write: (off, _size, v) => {
      if (off === 0) this.writeData(v & 0xff);
      else if (off === 4) this.writeCommand(v & 0xff);
    },
  };

  private readData(): number {
    this.metrics.reads++;
    const v = this.outByte;
    this.status &= ~(STAT_OBF | STAT_AUX_OBF);
    this.update();
    return v;
  }

  private writeCommand(cmd: number): void {
    this.status |= STAT_CMD;
    switch (cmd) {
      case 0x20:
        this.reply(this.mode);
        return;
      case 0x60:
      case 0xd1:
      case 0xd2:
      case 0xd3:
      case 0xd4:
        this.pendingCmd = cmd;
        return;
      case 0xa7:
        this.mode |= MODE_AUX_DISABLED;
        break;
      case 0xa8:
        this.mode &= ~MODE_AUX_DISABLED;
        break;
      case 0xa9:
      case 0xab:
        this.reply(0x00);
        return;
      case 0xaa:
        this.status |= STAT_SYS;
        this.reply(0x55);
        return;
      case 0xad:
        this.mode |= MODE_KBD_DISABLED;
        break;
      case 0xae:
        this.mode &= ~MODE_KBD_DISABLED;
        break;
      case 0xc0:
        this.reply(0x80); // keyboard not inhibited
        return;
      case 0xd0:
        this.reply(this.outputPort);
        return;
      default:
        if (cmd >= 0xf0 && !(cmd & 1)) this.onReset?.();
        return;
    }
    this.update();
  }

  private writeData(v: number): void {
    this.status &= ~STAT_CMD;
    const cmd = this.pendingCmd;
    this.pendingCmd = 0;
    switch (cmd) {
      case 0x60:
        this.mode = v;
        this.status = (this.status & ~STAT_SYS) | (v & MODE_SYS);
        break;
      case 0xd1:
        this.outputPort = v;
        if (!(v & 1)) this.onReset?.();
        break;
      case 0xd2:
        this.kbd.out.push(v);
        break;
      case 0xd3:
        this.aux.out.push(v);
        break;
      case 0xd4:
        this.aux.write(v);
        break;
      default:
        // A byte for the keyboard enables its interface, as the 8042 does.
        this.mode &= ~MODE_KBD_DISABLED;
        this.kbd.write(v);
    }
    this.update();
  }

  private reply(v: number): void {
    this.ctrl.push(v);
    this.update();
  }

  /** A key from the display's viewer (set 1 code, | 0x100 for E0 keys). */
  key(key: number, down: boolean): void {
    this.metrics.keys++;
    this.kbd.key(key, down);
    this.update();
  }

  pointer(x: number, y: number, buttons: number): void {
    this.metrics.pointer++;
    this.aux.pointer(x, y, buttons);
    this.update();
  }

  /** Controller registers, the three output queues and both PS/2 devices' settings (docs/kvm.md,
   * "Save, restore, migration"). */
  saveState(f: FieldWriter): void {
    writeRegisters(f, this, I8042_REGISTERS);
    f.bytes('ctrlQueue', this.ctrl.snapshot()).bytes('kbdQueue', this.kbd.out.snapshot()).bytes('auxQueue', this.aux.out.snapshot());
    writeRegisters(f, this.kbd, KBD_REGISTERS);
    writeRegisters(f, this.aux, MOUSE_REGISTERS);
  }

  loadState(r: FieldReader): void {
    const regs = readRegisters(r, this, I8042_REGISTERS, { mode: 0xff, status: 0xff, outByte: 0xff, pendingCmd: 0xff, outputPort: 0xff });
    const ctrl = r.bytes('ctrlQueue', undefined, this.ctrl.capacity);
    const kq = r.bytes('kbdQueue', undefined, this.kbd.out.capacity);
    const aq = r.bytes('auxQueue', undefined, this.aux.out.capacity);
    const kbd = readRegisters(r, this.kbd, KBD_REGISTERS, { pending: 0xff, leds: 7, keys: 0xff });
    const aux = readRegisters(r, this.aux, MOUSE_REGISTERS, { pending: 0xff, rate: 200, resolution: 3, scaling: 2, buttons: 7 });
    r.end();
    Object.assign(this, regs);
    this.ctrl.restore(ctrl);
    this.kbd.out.restore(kq);
    this.aux.out.restore(aq);
    Object.assign(this.kbd, kbd);
    Object.assign(this.aux, aux);
    this.update();
  }

  /** Load the next byte if the buffer is empty; drive IRQ 1 / 12 from the buffer's owner. */
  private update(): void {
    if (!(this.status & STAT_OBF)) {
      let b: number | undefined;
      if ((b = this.ctrl.shift()) !== undefined) this.load(b, false);
      else if (!(this.mode & MODE_KBD_DISABLED) && (b = this.nextKbdByte()) !== undefined) this.load(b, false);
      else if (!(this.mode & MODE_AUX_DISABLED) && (b = this.aux.out.shift()) !== undefined) this.load(b, true);
    }
    this.metrics.dropped = this.kbd.out.dropped + this.aux.out.dropped;
    const full = (this.status & STAT_OBF) !== 0;
    const aux = (this.status & STAT_AUX_OBF) !== 0;
    const kbdLevel = full && !aux && (this.mode & MODE_KBD_INT) !== 0;
    const auxLevel = full && aux && (this.mode & MODE_AUX_INT) !== 0;
    if (kbdLevel && !this.kbdIrq.level) this.metrics.interrupts++;
    this.kbdIrq.set(kbdLevel);
    this.auxIrq.set(auxLevel);
  }

  /** The keyboard's next byte as the guest sees it: translated to set 1 when bit 6 says so. */
  private nextKbdByte(): number | undefined {
    for (;;) {
      const b = this.kbd.out.shift();
      if (b === undefined) return undefined;
      if (!(this.mode & MODE_XLATE)) return b;
      if (b === 0xf0) {
        this.breakPrefix = true;
        continue;
      }
      const t = SET2_TO_SET1[b]!;
      const out = this.breakPrefix && b !== 0xe0 ? t | 0x80 : t;
      if (b !== 0xe0) this.breakPrefix = false;
      return out;
    }
  }

  private load(b: number, aux: boolean): void {
    this.outByte = b;
    this.status |= STAT_OBF | (aux ? STAT_AUX_OBF : 0);
  }

  reset(): void {
    this.kbd.reset();
    this.aux.reset();
    this.ctrl.clear();
    this.mode = DEFAULT_MODE;
    this.status = STAT_UNLOCKED | STAT_SYS;
    this.pendingCmd = 0;
    this.breakPrefix = false;
    this.update();
  }
}
