// A PS/2 keyboard (QEMU hw/input/ps2.c, the IBM PS/2 technical reference): it answers the
// commands a driver sends (reset with its self-test result, identify AB 83, LEDs, scan code set,
// typematic, enable/disable scanning, echo) and sends key presses in the current scan code set
// (2 by default; the i8042 translates it to set 1).
import { Ps2Device, PS2_ACK as ACK, PS2_RESEND as RESEND } from './ps2-device.js';
import { keyBytes } from './scancodes.js';

const BAT_OK = 0xaa;

export class Ps2Keyboard extends Ps2Device {
  scancodeSet: 1 | 2 | 3 = 2;
  scanning = true;
  leds = 0;
  keys = 0;

  constructor() {
    // LEDs, scan code set, typematic rate take an argument.
    super(new Set([0xed, 0xf0, 0xf3]));
  }

  protected argument(cmd: number, b: number): void {
    if (cmd === 0xed) this.leds = b & 7;
    else if (cmd === 0xf0) {
      if (b === 0) {
        this.out.pushAll([ACK, this.scancodeSet]);
        return;
      }
      if (b >= 1 && b <= 3) this.scancodeSet = b as 1 | 2 | 3;
    }
    this.out.push(ACK);
  }

  protected command(b: number): void {
    switch (b) {
      case 0xee:
        this.out.push(0xee);
        return;
      case 0xf2:
        this.out.pushAll([ACK, 0xab, 0x83]);
        return;
      case 0xf4:
        this.scanning = true;
        this.out.push(ACK);
        return;
      case 0xf5:
        this.scanning = false;
        this.scancodeSet = 2;
        this.out.push(ACK);
        return;
      case 0xf6:
        this.scancodeSet = 2;
        this.out.push(ACK);
        return;
      case 0xff:
        this.reset();
        this.out.pushAll([ACK, BAT_OK]);
        return;
      default:
        this.out.push(RESEND);
    }
  }

  reset(): void {
    this.out.clear();
    this.scancodeSet = 2;
    this.scanning = true;
    this.leds = 0;
    this.forgetPending();
  }

  /** A key went down or up (key = set 1 code, | 0x100 for E0 keys). */
  key(key: number, down: boolean): void {
    if (!this.scanning) return;
    const bytes = keyBytes(key, down, this.scancodeSet === 1 ? 1 : 2);
    if (bytes.length && this.out.pushAll(bytes)) this.keys++;
  }
}
