// The hypervisor's own message buffer, what `xl dmesg` reads (Xen's console ring).
const MAX_BYTES = 64 * 1024;

export class ConsoleLog {
  private lines: string[] = [];
  private bytes = 0;

  write(msg: string): void {
    const line = `(XEN) ${msg}`;
    this.lines.push(line);
    this.bytes += line.length + 1;
    while (this.bytes > MAX_BYTES && this.lines.length > 1) this.bytes -= this.lines.shift()!.length + 1;
    process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  }

  read(clear: boolean): string {
    const out = this.lines.join('\n') + (this.lines.length ? '\n' : '');
    if (clear) {
      this.lines = [];
      this.bytes = 0;
    }
    return out;
  }
}
