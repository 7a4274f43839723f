// A PS/2 mouse (QEMU hw/input/ps2.c): stream mode packets of three bytes (buttons and sign
// bits, dx, dy with y growing upwards), the commands drivers send (reset: AA 00, identify 00,
// sample rate, resolution, scaling, status request, enable/disable reporting). A VNC viewer's
// absolute pointer becomes relative motion here.
import { ByteQueue } from './byte-queue.js';

const ACK = 0xfa;
const WITH_ARG = new Set([0xe8, 0xf3]);

export class Ps2Mouse {
  readonly out = new ByteQueue(256);
  reporting = false;
  rate = 100;
  resolution = 2;
  scaling = 1;
  private pending = 0;
  private buttons = 0;
  private lastX = -1;
  private lastY = -1;
  packets = 0;

  write(b: number): void {
    if (this.pending) {
      if (this.pending === 0xf3) this.rate = b;
      else this.resolution = b & 3;
      this.pending = 0;
      this.out.push(ACK);
      return;
    }
    if (WITH_ARG.has(b)) {
      this.pending = b;
      this.out.push(ACK);
      return;
    }
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
        this.out.push(0xfe);
    }
  }

  private defaults(): void {
    this.reporting = false;
    this.rate = 100;
    this.resolution = 2;
    this.scaling = 1;
    this.pending = 0;
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
