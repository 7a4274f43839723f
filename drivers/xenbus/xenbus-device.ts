// What a split driver's two halves share about xenbus: reading the other end's keys, moving
// its own state, and watching the other end's state. Both the guest's frontends and dom0's
// backends build their state machines on this (Linux's xenbus_client.c in miniature).
import { XenbusState, parseXenbusState } from '../xenstore/xenbus-state.js';

/** The part of an XsClient a driver uses (both the ring client and dom0's local one fit). */
export interface XenbusStore {
  read(path: string): Promise<string>;
  write(path: string, value: string): Promise<void>;
  rm(path: string): Promise<void>;
  directory(path: string): Promise<string[]>;
  watch(path: string, token: string, cb: (path: string, token: string) => void): Promise<void>;
  unwatch(path: string, token: string): Promise<void>;
}

let tokenSeq = 0;

export class XenbusDevice {
  private watches: { path: string; token: string }[] = [];
  private closed = false;

  constructor(
    readonly xs: XenbusStore,
    /** This end's directory. */
    readonly path: string,
    /** The other end's directory. */
    readonly otherEnd: string,
  ) {}

  async readKey(key: string, base = this.otherEnd): Promise<string | undefined> {
    try {
      return await this.xs.read(`${base}/${key}`);
    } catch {
      return undefined;
    }
  }

  /** An untrusted integer from the other end, range-checked: undefined if absent or bad. */
  async readInt(key: string, min: number, max: number, base = this.otherEnd): Promise<number | undefined> {
    const v = await this.readKey(key, base);
    if (v === undefined || !/^-?\d+$/.test(v.trim())) return undefined;
    const n = Number(v);
    return n >= min && n <= max ? n : undefined;
  }

  async readFlag(key: string, base = this.otherEnd): Promise<boolean> {
    return (await this.readKey(key, base))?.trim() === '1';
  }

  /** All at once: the store answers a connection's requests in order, so the other end, which
   * reads them when our state moves next, sees every one; one round trip instead of one each
   * (a frontend's handshake is on its kernel's way to init). */
  async writeKeys(keys: Record<string, string | number>): Promise<void> {
    await Promise.all(Object.entries(keys).map(([k, v]) => this.xs.write(`${this.path}/${k}`, String(v))));
  }

  /** As Linux's xenbus_switch_state: only while the device's state node exists, so a late
   * state change never brings back a device the toolstack has just removed (a write would
   * recreate the whole directory, and the bus would see the device again). */
  async switchState(state: XenbusState): Promise<void> {
    try {
      await this.xs.read(`${this.path}/state`);
    } catch {
      return;
    }
    await this.xs.write(`${this.path}/state`, String(state));
  }

  async state(base = this.path): Promise<XenbusState> {
    return parseXenbusState((await this.readKey('state', base)) ?? '');
  }

  async otherState(): Promise<XenbusState> {
    return this.state(this.otherEnd);
  }

  /**
   * Call `cb` with the other end's state now and whenever it changes. The other end writes
   * that node as often as it likes (and nodes below it): one read at a time, and events that
   * arrive meanwhile make one more read, never one each (Linux's XSA-349 rule for backends).
   */
  async watchOtherEnd(cb: (state: XenbusState) => void): Promise<void> {
    let reading = false;
    let again = false;
    const look = (): void => {
      if (this.closed) return;
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      void this.otherState()
        .then((s) => {
          if (!this.closed) cb(s);
        })
        .finally(() => {
          reading = false;
          if (again) {
            again = false;
            look();
          }
        });
    };
    await this.watchPath(`${this.otherEnd}/state`, look);
  }

  /** Watch any node; the first event fires at registration, as in Xen. */
  async watchPath(path: string, cb: () => void): Promise<void> {
    const token = `xenbus-${++tokenSeq}`;
    this.watches.push({ path, token });
    await this.xs.watch(path, token, () => cb());
  }

  /** Drop every watch this device registered. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.watches.splice(0)) await this.xs.unwatch(w.path, w.token).catch(() => {});
  }
}

export { XenbusState };
