// `xl console DOM` as a user runs it: in a terminal (a tmux pane of our own tmux server), read
// from the screen and typed into with keystrokes. Nothing here opens the console's tty itself.
import { Tmux, sleep } from './platform.js';
import type { Instance } from './instance.js';

export class XlConsole {
  private readonly tmux = new Tmux();
  private readonly session: string;

  /** `opts`: xl console's options (`-t pv`), before the domain. */
  constructor(private readonly xn: Instance, private readonly dom: string, private readonly opts: string[] = []) {
    this.session = `c-${dom}${opts.join('')}`.replace(/[^A-Za-z0-9_-]/g, '_');
  }

  /** Attach (xl console [opts] DOM) in a fresh terminal. */
  attach(): this {
    this.tmux.startXl(this.xn, this.session, 'console', ...this.opts, this.dom);
    return this;
  }

  screen(): string {
    try {
      return this.tmux.capture(this.session);
    } catch {
      return '';
    }
  }

  /** Wait until the screen matches; the error shows what was there. */
  async waitFor(re: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.screen().match(re);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`console of ${this.dom}: no ${re} within ${timeoutMs} ms; screen:\n${this.screen()}`);
      await sleep(50);
    }
  }

  /** Type a line (Enter included). */
  type(line: string): void {
    this.tmux.sendKeys(this.session, '-l', line);
    this.tmux.sendKeys(this.session, 'Enter');
  }

  /** Run a shell command at the guest's prompt and return what it printed (between markers). */
  async run(command: string, timeoutMs = 10_000): Promise<string> {
    const tag = Math.random().toString(36).slice(2, 8);
    this.type(`echo B${tag}""B; ${command}; echo E${tag}""E`);
    // The marker may follow a prompt on the same line (keys typed while the shell was still
    // printing it are echoed first); the echoed command line itself never matches (B""B).
    const m = await this.waitFor(new RegExp(`B${tag}B\\r?\\n([\\s\\S]*?)E${tag}E`), timeoutMs);
    return m[1]!.replace(/\r/g, '');
  }

  close(): void {
    this.tmux.kill();
  }
}
