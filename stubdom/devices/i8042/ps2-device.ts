// What a PS/2 keyboard and mouse share: a bounded output queue and the command protocol, in
// which some command bytes take the next byte as their argument (the device ACKs the command
// first, then acts on the argument).
import { ByteQueue } from './byte-queue.js';

export const PS2_ACK = 0xfa;
export const PS2_RESEND = 0xfe;

export abstract class Ps2Device {
  readonly out = new ByteQueue(256);
  private pending = 0;

  constructor(private readonly commandsWithArgument: ReadonlySet<number>) {}

  /** A byte from the controller. */
  write(b: number): void {
    if (this.pending) {
      const cmd = this.pending;
      this.pending = 0;
      this.argument(cmd, b);
      return;
    }
    if (this.commandsWithArgument.has(b)) {
      this.pending = b;
      this.out.push(PS2_ACK);
      return;
    }
    this.command(b);
  }

  /** The argument of a command that takes one; answers for itself. */
  protected abstract argument(cmd: number, arg: number): void;
  protected abstract command(b: number): void;

  protected forgetPending(): void {
    this.pending = 0;
  }
}
