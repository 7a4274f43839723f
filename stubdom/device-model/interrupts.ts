// Interrupt lines. Devices drive LEVELS (a PCI INTx pin, an ISA device's IRQ output); the
// embedder receives only transitions of each line through an InterruptSink and maps them to
// an event channel send (Xen: xc_hvm_set_isa_irq_level / set_pci_intx_level), or later to a
// KVM_IRQ_LINE. Several sources may share a line (PCI INTx sharing): the line is the OR of its
// sources, so the sink sees raise() when the first source asserts and lower() when the last
// one deasserts. Whether the guest's interrupt controller treats a line as edge (ISA) or
// level (PCI) triggered is the embedder's business; it gets both edges.

export interface InterruptSink {
  raise(line: number): void;
  lower(line: number): void;
}

/** A sink that remembers line levels and counts rising edges (tests, diagnostics). */
export class RecordingInterruptSink implements InterruptSink {
  readonly levels = new Map<number, boolean>();
  readonly raised = new Map<number, number>();
  readonly log: string[] = [];

  raise(line: number): void {
    this.levels.set(line, true);
    this.raised.set(line, (this.raised.get(line) ?? 0) + 1);
    if (this.log.length < 10_000) this.log.push(`+${line}`);
  }

  lower(line: number): void {
    this.levels.set(line, false);
    if (this.log.length < 10_000) this.log.push(`-${line}`);
  }

  level(line: number): boolean {
    return this.levels.get(line) ?? false;
  }

  count(line: number): number {
    return this.raised.get(line) ?? 0;
  }
}

export class IrqLines {
  private readonly asserted: number[];

  constructor(
    private readonly sink: InterruptSink,
    readonly count = 24,
  ) {
    this.asserted = new Array<number>(count).fill(0);
  }

  /** A new source on `line` (null: not connected, e.g. an unrouted PCI PIRQ). */
  source(line: number | null, name: string): IrqSource {
    return new IrqSource(this, this.checkLine(line), name);
  }

  /** Level of a line as the sink last saw it. */
  level(line: number): boolean {
    return (this.asserted[line] ?? 0) > 0;
  }

  private checkLine(line: number | null): number | null {
    if (line === null) return null;
    if (!Number.isInteger(line) || line < 0 || line >= this.count) return null;
    return line;
  }

  /** @internal */
  assert(line: number): void {
    if (this.asserted[line]!++ === 0) this.sink.raise(line);
  }

  /** @internal */
  deassert(line: number): void {
    if (this.asserted[line]! <= 0) return;
    if (--this.asserted[line]! === 0) this.sink.lower(line);
  }

  /** @internal */
  validLine(line: number | null): number | null {
    return this.checkLine(line);
  }
}

export class IrqSource {
  private lvl = false;
  /** Rising edges of this source's output (the device's "interrupts" metric). */
  edges = 0;

  constructor(
    private readonly lines: IrqLines,
    private lineNo: number | null,
    readonly name: string,
  ) {}

  get line(): number | null {
    return this.lineNo;
  }

  get level(): boolean {
    return this.lvl;
  }

  set(level: boolean): void {
    if (level === this.lvl) return;
    this.lvl = level;
    if (level) this.edges++;
    if (this.lineNo === null) return;
    if (level) this.lines.assert(this.lineNo);
    else this.lines.deassert(this.lineNo);
  }

  raise(): void {
    this.set(true);
  }

  lower(): void {
    this.set(false);
  }

  /** Reconnects the source to another line (PIRQ re-routing), carrying its level over. */
  moveTo(line: number | null): void {
    const next = this.lines.validLine(line);
    if (next === this.lineNo) return;
    if (this.lvl && this.lineNo !== null) this.lines.deassert(this.lineNo);
    this.lineNo = next;
    if (this.lvl && this.lineNo !== null) this.lines.assert(this.lineNo);
  }
}
