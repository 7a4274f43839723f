// A PS/2 mouse (QEMU hw/input/ps2.c): stream mode packets of three bytes (buttons and sign
// bits, dx, dy with y growing upwards), the commands drivers send (reset: AA 00, identify 00,
// sample rate, resolution, scaling, status request, enable/disable reporting). A VNC viewer's
// absolute pointer becomes relative motion here.
import { Ps2Device, PS2_ACK as ACK, PS2_RESEND } from './ps2-device.js';

export class Ps2Mouse extends Ps2Device {
  reporting = false;
  rate = 100;
  resolution = 2;
  scaling = 1;
  private buttons = 0;
  private lastX = -1;
  private lastY = -1;
  packets = 0;

  constructor() {
    // Resolution and sample rate take an argument.
    super(new Set([0xe8, 0xf3]));
  }

  protected argument(cmd: number, b: number): void {
    if (cmd === 0xf3) this.rate = b;
    else this.resolution = b & 3;
    this.out.push(ACK);
  }

  protected command(b: number): void {
    switch (b) {
      case 0xe6:
      case 0xe7:
        this.scaling = b === 0xe7 ? 2 : 1;
        this.out.push(ACK);
        return;
      case 0xe9:
        this.out.pushAll([ACK, (this.reporting ? 0x20 : 0) | (this.scaling === 2 ? 0x10 : 0) | this.buttons, this.resolution, this.rate]);
        return;
      case 0xea:
      case 0xf0:
        this.out.push(ACK);
        return;
      case 0xeb:
        this.out.push(ACK);
        this.packet(0, 0);
        return;
      case 0xf2:
        this.out.pushAll([ACK, 0x00]);
        return;
      case 0xf4:
        this.reporting = true;
        this.out.push(ACK);
        return;
      case 0xf5:
        this.reporting = false;
        this.out.push(ACK);
        return;
      case 0xf6:
        this.defaults();
        this.out.push(ACK);
        return;
      case 0xff:
        this.defaults();
        this.out.clear();
        this.out.pushAll([ACK, 0xaa, 0x00]);
        return;
      default:
        this.out.push(PS2_RESEND);
    }
  }

  private defaults(): void {
    this.reporting = false;
    this.rate = 100;
    this.resolution = 2;
    this.scaling = 1;
    this.forgetPending();
  }

  reset(): void {
    this.defaults();
    this.out.clear();
  }

  /** The viewer's pointer at (x, y) with VNC's button mask (bit 0 left, 1 middle, 2 right). */
  pointer(x: number, y: number, mask: number): void {
    const dx = this.lastX < 0 ? 0 : x - this.lastX;
    const dy = this.lastY < 0 ? 0 : this.lastY - y;
    this.lastX = x;
    this.lastY = y;
    this.buttons = (mask & 1) | ((mask & 4) >> 1) | ((mask & 2) << 1);
    if (this.reporting) this.packet(dx, dy);
  }

  private packet(dx: number, dy: number): void {
    dx = Math.max(-255, Math.min(255, dx));
    dy = Math.max(-255, Math.min(255, dy));
    const b0 = 0x08 | this.buttons | (dx < 0 ? 0x10 : 0) | (dy < 0 ? 0x20 : 0);
    if (this.out.pushAll([b0, dx & 0xff, dy & 0xff])) this.packets++;
  }
}
