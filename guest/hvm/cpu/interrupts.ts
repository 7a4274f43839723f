// Interrupt delivery to the guest OS: the "local APIC + IOAPIC" of this vCPU. The device model
// drives interrupt LEVELS in the platform page's IRQ_LEVEL word (bit n = line n asserted) and
// rings the guest's irq event channel on every rising edge (docs/hvm.md, Interrupts). On the
// event, dispatch() reads the levels and runs the handlers registered for every asserted line
// (several handlers per line: PCI INTx is shared); a handler acknowledges its device, which
// lowers the line. Lines are level-triggered, so dispatch re-reads and goes round again while
// any line stays asserted, at most MAX_ROUNDS times per pass; after that it yields to the event
// loop and comes back (an interrupt storm must not starve everything else).
//
// A line asserted with no handler, or whose handlers keep saying "not mine", is masked with
// Linux's "nobody cared" message, so one stuck device cannot spin the vCPU.
export type IrqHandler = () => boolean;

export interface IrqLineCounters {
  /** Passes in which this line was found asserted and its handlers ran. */
  count: number;
  /** ... and at least one handler claimed it. */
  handled: number;
  unhandled: number;
}

export interface InterruptCounters {
  /** Irq events (event channel notifications) received. */
  events: number;
  /** Handler rounds run (several per event when lines stay asserted). */
  rounds: number;
  /** Passes that hit MAX_ROUNDS and were continued later. */
  storms: number;
  /** Rising edges the device model reported (its IRQ_RAISES word), when known. */
  raises: number;
  lines: Record<number, IrqLineCounters & { names: string[]; masked: boolean }>;
}

interface Action {
  name: string;
  fn: IrqHandler;
}

const MAX_ROUNDS = 16;
/** Consecutive unclaimed passes before a line is disabled (Linux: 99900 of 100000). */
const NOBODY_CARED = 1000;
export const NR_IRQ_LINES = 24;

export class InterruptController {
  private readonly actions: Action[][] = Array.from({ length: NR_IRQ_LINES }, () => []);
  private readonly stats: IrqLineCounters[] = Array.from({ length: NR_IRQ_LINES }, () => ({ count: 0, handled: 0, unhandled: 0 }));
  private readonly unclaimedRun = new Array<number>(NR_IRQ_LINES).fill(0);
  private masked = 0;
  private scheduled = false;
  private dispatching = false;
  private events = 0;
  private rounds = 0;
  private storms = 0;

  constructor(
    /** The platform page as Int32 words. */
    private readonly words: Int32Array,
    private readonly levelIndex: number,
    private readonly raisesIndex: number | null,
    private readonly log: (msg: string) => void = () => {},
  ) {}

  /** Lines asserted right now (unmasked). */
  pending(): number {
    return Atomics.load(this.words, this.levelIndex) & ~this.masked;
  }

  /** request_irq(): adds a handler to `line`. Lines already asserted are serviced at once
   * (the device model only rings on a rising edge). Returns free_irq(). */
  request(line: number, name: string, fn: IrqHandler): () => void {
    if (!Number.isInteger(line) || line < 0 || line >= NR_IRQ_LINES) throw new RangeError(`irq ${line} out of range`);
    const a: Action = { name, fn };
    this.actions[line]!.push(a);
    this.masked &= ~(1 << line);
    this.unclaimedRun[line] = 0;
    this.kick();
    return () => {
      const list = this.actions[line]!;
      const i = list.indexOf(a);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** The irq event: service every asserted line. */
  onEvent(): void {
    this.events++;
    this.dispatch();
  }

  /** Schedules a dispatch pass on the event loop (after a handler registration, a storm). */
  kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.dispatch();
    });
  }

  /** One pass: run handlers while lines stay asserted, bounded. */
  dispatch(): void {
    if (this.dispatching) return; // a handler's own I/O cannot re-enter, but be safe
    this.dispatching = true;
    try {
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const lv = this.pending();
        if (lv === 0) return;
        this.rounds++;
        for (let line = 0; line < NR_IRQ_LINES; line++) {
          if (!(lv & (1 << line))) continue;
          this.serviceLine(line);
        }
      }
      if (this.pending() !== 0) {
        this.storms++;
        this.kick();
      }
    } finally {
      this.dispatching = false;
    }
  }

  private serviceLine(line: number): void {
    const list = this.actions[line]!;
    const st = this.stats[line]!;
    st.count++;
    let handled = false;
    for (const a of list) {
      try {
        if (a.fn()) handled = true;
      } catch (e) {
        this.log(`irq ${line}: handler ${a.name} failed: ${(e as Error).stack ?? e}`);
        throw e;
      }
    }
    if (handled) {
      st.handled++;
      this.unclaimedRun[line] = 0;
      return;
    }
    st.unhandled++;
    if (list.length === 0 || ++this.unclaimedRun[line]! >= NOBODY_CARED) {
      this.masked |= 1 << line;
      this.log(`irq ${line}: nobody cared${list.length ? ` (handlers: ${list.map((a) => a.name).join(', ')})` : ''}; disabling IRQ #${line}`);
    }
  }

  counters(): InterruptCounters {
    const lines: InterruptCounters['lines'] = {};
    for (let l = 0; l < NR_IRQ_LINES; l++) {
      const s = this.stats[l]!;
      if (s.count === 0 && this.actions[l]!.length === 0) continue;
      lines[l] = { ...s, names: this.actions[l]!.map((a) => a.name), masked: (this.masked & (1 << l)) !== 0 };
    }
    const raises = this.raisesIndex === null ? 0 : Atomics.load(this.words, this.raisesIndex) >>> 0;
    return { events: this.events, rounds: this.rounds, storms: this.storms, raises, lines };
  }
}
