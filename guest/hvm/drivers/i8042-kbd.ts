// The PS/2 keyboard behind the PC's i8042 controller (Linux's i8042 + atkbd + the console's
// keymap, en-us): the controller is found and tested (self-test 0xAA must answer 0x55), its
// command byte set to keyboard interrupt on, translation to scan code set 1 on, aux port off
// (there is no mouse driver); the keyboard is reset (FA AA) and enabled (F4). On IRQ 1 the
// handler drains port 0x60 while the status register says the byte is the keyboard's, decodes
// set 1 (E0 prefixes, 0x80 = release), tracks Shift/Ctrl/Alt/Caps Lock, and sends what the
// Linux console would send for the key: characters, ^X controls, ESC-prefixed Alt, DEL for
// Backspace, and ESC [ sequences for arrows, Home/End, Insert/Delete, Page Up/Down, F1-F5.
import type { Cpu } from '../cpu/io.js';

const DATA = 0x60;
const STATUS = 0x64;
const STAT_OBF = 0x01;
const STAT_AUX = 0x20;
const MODE_KBD_INT = 0x01;
const MODE_AUX_INT = 0x02;
const MODE_SYS = 0x04;
const MODE_AUX_OFF = 0x20;
const MODE_XLATE = 0x40;
const POLL_LIMIT = 1000;
const HANDLER_BOUND = 64;

// Set 1 codes 0x02-0x39 on a US keyboard, without and with Shift ('\0' = not a character).
const PLAIN = '\0\0' + '1234567890-=\0\t' + 'qwertyuiop[]\r\0' + "asdfghjkl;'`\0\\" + 'zxcvbnm,./\0*\0 ';
const SHIFT = '\0\0' + '!@#$%^&*()_+\0\t' + 'QWERTYUIOP{}\r\0' + 'ASDFGHJKL:"~\0|' + 'ZXCVBNM<>?\0*\0 ';
const EXTENDED: Record<number, string> = {
  0x48: '\x1b[A', 0x50: '\x1b[B', 0x4d: '\x1b[C', 0x4b: '\x1b[D',
  0x47: '\x1b[1~', 0x4f: '\x1b[4~', 0x52: '\x1b[2~', 0x53: '\x1b[3~', 0x49: '\x1b[5~', 0x51: '\x1b[6~',
  0x1c: '\r', 0x35: '/',
};
const FKEYS: Record<number, string> = { 0x3b: '\x1b[[A', 0x3c: '\x1b[[B', 0x3d: '\x1b[[C', 0x3e: '\x1b[[D', 0x3f: '\x1b[[E' };

export interface KeyboardCounters {
  bytes: number;
  keys: number;
  interrupts: number;
}

export class I8042Keyboard {
  readonly irq = 1;
  readonly counters: KeyboardCounters = { bytes: 0, keys: 0, interrupts: 0 };
  /** Where typed characters go (the VGA console's tty). */
  onInput: ((bytes: Uint8Array) => void) | null = null;
  private e0 = false;
  private shift = 0;
  private ctrl = 0;
  private alt = 0;
  private caps = false;

  private constructor(private readonly cpu: Cpu) {}

  private waitOutput(): number | null {
    for (let i = 0; i < POLL_LIMIT; i++) if (this.cpu.inb(STATUS) & STAT_OBF) return this.cpu.inb(DATA);
    return null;
  }

  private command(cmd: number, arg?: number): void {
    this.cpu.outb(STATUS, cmd);
    if (arg !== undefined) this.cpu.outb(DATA, arg);
  }

  /** The controller and keyboard, or null (no i8042: an all-ones status, a failed self-test). */
  static probe(cpu: Cpu): I8042Keyboard | null {
    if (cpu.inb(STATUS) === 0xff) return null;
    cpu.claimPorts('i8042', DATA, 5);
    const k = new I8042Keyboard(cpu);
    // Flush whatever is pending, then the controller's self-test.
    for (let i = 0; i < 16 && cpu.inb(STATUS) & STAT_OBF; i++) cpu.inb(DATA);
    k.command(0xaa);
    if (k.waitOutput() !== 0x55) return null;
    k.command(0x20);
    const mode = k.waitOutput() ?? MODE_SYS;
    k.command(0x60, ((mode | MODE_KBD_INT | MODE_XLATE | MODE_AUX_OFF) & ~MODE_AUX_INT & ~0x10) | MODE_SYS);
    // Keyboard reset: ACK, then the self-test passed code.
    cpu.outb(DATA, 0xff);
    if (k.waitOutput() !== 0xfa || k.waitOutput() !== 0xaa) return null;
    cpu.outb(DATA, 0xf4);
    k.waitOutput();
    return k;
  }

  describe(): string {
    return 'serio: i8042 KBD port at 0x60,0x64 irq 1; input: AT Translated Set 2 keyboard';
  }

  /** IRQ 1: true when the controller had something (the line was ours). */
  handleIrq(): boolean {
    this.counters.interrupts++;
    let handled = false;
    for (let i = 0; i < HANDLER_BOUND; i++) {
      const st = this.cpu.inb(STATUS);
      if (!(st & STAT_OBF)) break;
      handled = true;
      const b = this.cpu.inb(DATA);
      if (st & STAT_AUX) continue;
      this.counters.bytes++;
      this.scancode(b);
    }
    return handled;
  }

  private scancode(b: number): void {
    if (b === 0xe0) {
      this.e0 = true;
      return;
    }
    const ext = this.e0;
    this.e0 = false;
    const up = (b & 0x80) !== 0;
    const code = b & 0x7f;
    const bit = ext ? 2 : 1;
    if (code === 0x2a || code === 0x36) return void (this.shift = up ? this.shift & ~(code === 0x2a ? 1 : 2) : this.shift | (code === 0x2a ? 1 : 2));
    if (code === 0x1d) return void (this.ctrl = up ? this.ctrl & ~bit : this.ctrl | bit);
    if (code === 0x38) return void (this.alt = up ? this.alt & ~bit : this.alt | bit);
    if (up) return;
    if (code === 0x3a) return void (this.caps = !this.caps);
    this.counters.keys++;
    let out: string | undefined;
    if (ext) out = EXTENDED[code];
    else if (FKEYS[code]) out = FKEYS[code];
    else if (code === 0x01) out = '\x1b';
    else if (code === 0x0e) out = '\x7f';
    else if (code < PLAIN.length && PLAIN[code] !== '\0') {
      const letter = PLAIN[code]! >= 'a' && PLAIN[code]! <= 'z';
      const shifted = this.shift !== 0 !== (letter && this.caps);
      out = shifted ? SHIFT[code] : PLAIN[code];
      if (this.ctrl && out) {
        const c = out.toUpperCase().charCodeAt(0);
        if (c >= 0x40 && c <= 0x5f) out = String.fromCharCode(c & 0x1f);
        else if (out === ' ') out = '\0';
      }
    }
    if (out === undefined) return;
    if (this.alt && out.length === 1) out = '\x1b' + out;
    this.onInput?.(Buffer.from(out, 'latin1'));
  }
}
