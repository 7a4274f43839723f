// The vCPU's side of one ioreq slot: what the hypervisor (or a KVM vCPU thread) does when the
// guest touches an emulated device. Publishes the request, rings the device model's doorbell,
// blocks on the slot's wait word until IORESP_READY, takes the answer and frees the slot.
// The protocol is described in stubdom/device-model/ioreq-server.ts and stubdom/README.md.
import {
  createIoreq,
  ioreq,
  ioreqCompareExchangeState,
  ioreqGetState,
  ioreqSetState,
  IOREQ_SIZE,
  IOREQ_WAIT_WORD_OFFSET,
  IOREQ_WAIT_WORD_STATE_SHIFT,
  STATE_IOREQ_NONE,
  STATE_IOREQ_READY,
  STATE_IORESP_READY,
  type Ioreq,
} from '../wire/ioreq.js';
import type { FutexOps, WordRef } from './futex.js';

export class IoreqTimeoutError extends Error {}

export class IoreqVcpuPort {
  private readonly u8: Uint8Array;
  private readonly view: DataView;
  private readonly i32: Int32Array;
  private readonly off: number;
  private readonly waitIndex: number;
  private readonly out: Ioreq = createIoreq();
  /** Times this vCPU actually slept in futexWait. */
  sleeps = 0;

  constructor(
    page: SharedArrayBuffer,
    pageOffset: number,
    readonly vcpu: number,
    private readonly doorbell: WordRef,
    private readonly futex: FutexOps,
  ) {
    this.u8 = new Uint8Array(page);
    this.view = new DataView(page);
    this.i32 = new Int32Array(page, 0, page.byteLength >> 2);
    this.off = pageOffset + vcpu * IOREQ_SIZE;
    if (pageOffset % 4 !== 0 || this.off + IOREQ_SIZE > page.byteLength) throw new RangeError('bad ioreq slot');
    this.waitIndex = (this.off + IOREQ_WAIT_WORD_OFFSET) >> 2;
  }

  /**
   * Issues one synchronous ioreq and returns the response's data field. Throws
   * IoreqTimeoutError if the device model does not answer within timeoutMs (the hypervisor
   * would then crash the domain).
   */
  call(req: Partial<Ioreq> & Pick<Ioreq, 'type' | 'addr' | 'size' | 'dir'>, timeoutMs = 5000): bigint {
    if (ioreqGetState(this.u8, this.off) !== STATE_IOREQ_NONE) throw new Error(`vcpu ${this.vcpu}: ioreq slot busy`);
    const r = this.out;
    r.addr = req.addr;
    r.data = req.data ?? 0n;
    r.count = req.count ?? 1;
    r.size = req.size;
    r.vpEport = req.vpEport ?? 0;
    r.state = STATE_IOREQ_NONE;
    r.dataIsPtr = req.dataIsPtr ?? false;
    r.dir = req.dir;
    r.df = req.df ?? false;
    r.type = req.type;
    ioreq.encode(this.view, this.off, r);
    ioreqSetState(this.u8, this.off, STATE_IOREQ_READY);
    Atomics.add(this.doorbell.view, this.doorbell.index, 1);
    this.futex.futexWake(this.doorbell.view, this.doorbell.index, 1);

    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const w = Atomics.load(this.i32, this.waitIndex);
      if (((w >>> IOREQ_WAIT_WORD_STATE_SHIFT) & 0xf) === STATE_IORESP_READY) break;
      const left = deadline - Date.now();
      if (left <= 0) throw new IoreqTimeoutError(`vcpu ${this.vcpu}: no answer from the device model`);
      this.sleeps++;
      this.futex.futexWait(this.i32, this.waitIndex, w, left);
    }
    const data = this.view.getBigUint64(this.off + 8, true);
    ioreqCompareExchangeState(this.u8, this.off, STATE_IORESP_READY, STATE_IOREQ_NONE);
    return data;
  }
}
