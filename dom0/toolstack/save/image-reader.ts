// Reading a save image or migration stream back into a new domain (docs/kvm.md, "Save,
// restore, migration"): `xl restore` and the receiving side of `xl migrate`.
//
// 1. The head of the stream: CONFIG and DOMAIN first; in a save image also CPU and DEVICES
//    (they come before the pages). All checked before anything is created: the image's RAM
//    size and vCPU count against the config's, the CPU state's every record
//    (kvm-state-codec.ts), the device state's structure (device-state.ts).
// 2. The domain is created paused, in restore mode (no kernel loaded), and the rest is read
//    into it: PAGES into its RAM (dom0's fresh special pages at the top stay as they are),
//    CPU and DEVICES (a migration sends them last) checked as they come, until END.
// 3. The CPU state goes into KVM, the device state to the new device models, which load it
//    before serving; only then may the domain run.
// Any failure fails the create, which destroys the new domain: nothing half-restored remains.
import { native } from '../../../native/index.js';
import type { BuildSpec } from '../build-spec.js';
import { SPECIAL_PAGES } from '../../../drivers/hypercall/start-info.js';
import { decodeKvmState } from '../../../common/kvm-state-codec.js';
import { StateReader } from '../../../stubdom/device-model/device-state.js';
import type { ByteSource } from './byte-channel.js';
import { PAGE_SIZE, REC, StreamError, StreamReader, decodeDomain, decodePages, recordName, type DomainInfo, type StreamRecord } from './save-stream.js';
import { checkSaveable } from './image-writer.js';

export interface ImageHead {
  spec: BuildSpec;
  domain: DomainInfo;
}

export class ImageReader {
  private readonly stream = new StreamReader();
  private cpu: Uint8Array | null = null;
  private devices: Uint8Array | null = null;
  private eof = false;
  /** Bytes read, pages loaded (for messages and the benchmark). */
  pagesLoaded = 0;

  constructor(private readonly source: ByteSource) {}

  private async next(): Promise<StreamRecord> {
    for (;;) {
      const r = this.stream.next();
      if (r) return r;
      if (this.eof) {
        this.stream.finish();
        throw new StreamError('the image ended early');
      }
      const chunk = await this.source.read();
      if (chunk === null) this.eof = true;
      else this.stream.push(chunk);
    }
  }

  /** CONFIG then DOMAIN; `override` is a config given on the command line (xl restore CONFIG
   * FILE), used instead of the image's, as xl does. Checks the RAM size and vCPUs. */
  async head(override: BuildSpec | null, validate: (spec: BuildSpec) => BuildSpec): Promise<ImageHead> {
    const c = await this.next();
    if (c.type !== REC.CONFIG) throw new StreamError(`the image starts with a ${recordName(c.type)} record, not its config`);
    let spec: BuildSpec;
    try {
      spec = override ?? (JSON.parse(Buffer.from(c.body).toString('utf8')) as BuildSpec);
    } catch {
      throw new StreamError('the config in the image is not JSON');
    }
    spec = validate(spec);
    checkSaveable(spec, 'restore');
    const d = await this.next();
    if (d.type !== REC.DOMAIN) throw new StreamError(`the config is followed by a ${recordName(d.type)} record, not the domain's size`);
    const domain = decodeDomain(d.body);
    const cfgBytes = spec.memoryMiB * 1048576;
    if (domain.memoryBytes !== cfgBytes) {
      throw new StreamError(`the image holds ${domain.memoryBytes / 1048576} MiB of RAM, the config gives memory = ${spec.memoryMiB}: refusing to restore into a different size`);
    }
    if (domain.vcpus !== spec.maxVcpus) throw new StreamError(`the image has ${domain.vcpus} vCPUs, the config gives ${spec.maxVcpus}`);
    return { spec, domain };
  }

  /** A save image's CPU and DEVICES, which come before its pages: read and checked now.
   * Returns the first PAGES (or END) record, for load(). */
  async prefetchState(vcpus: number): Promise<StreamRecord | null> {
    for (;;) {
      const r = await this.next();
      if (r.type === REC.CPU || r.type === REC.DEVICES) this.take(r, vcpus);
      else if (r.type === REC.PAGES || r.type === REC.END) return r;
      else throw new StreamError(`unexpected ${recordName(r.type)} record`);
    }
  }

  private take(r: StreamRecord, vcpus: number): void {
    try {
      if (r.type === REC.CPU) {
        if (this.cpu) throw new StreamError('two CPU records');
        decodeKvmState(r.body, vcpus);
        this.cpu = r.body;
      } else {
        if (this.devices) throw new StreamError('two DEVICES records');
        new StateReader(r.body);
        this.devices = r.body;
      }
    } catch (e) {
      throw e instanceof StreamError ? e : new StreamError(`the image's ${r.type === REC.CPU ? 'CPU' : 'device'} state is refused: ${(e as Error).message}`);
    }
  }

  /** Reads the rest into the new domain's RAM (`mem`), up to END. Returns the CPU and device
   * state, both checked. */
  async load(mem: Uint8Array, first: StreamRecord | null, vcpus: number): Promise<{ cpu: Uint8Array; devices: Uint8Array }> {
    const total = mem.length / PAGE_SIZE;
    // dom0's pages at the top of RAM (start_info, xenstore and console rings) are the new
    // domain's own, not the saved one's.
    const keep = total - SPECIAL_PAGES;
    for (let r = first ?? (await this.next()); ; r = await this.next()) {
      if (r.type === REC.END) break;
      if (r.type === REC.PAGES) {
        const b = decodePages(r.body, total);
        b.pages.forEach((p, i) => {
          if (p >= keep) return;
          const d = b.data[i];
          if (d) mem.set(d, p * PAGE_SIZE);
          else mem.fill(0, p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
        });
        this.pagesLoaded += b.pages.length;
      } else if (r.type === REC.CPU || r.type === REC.DEVICES) this.take(r, vcpus);
      else throw new StreamError(`unexpected ${recordName(r.type)} record`);
    }
    if (!this.cpu) throw new StreamError('the image has no CPU state');
    if (!this.devices) throw new StreamError('the image has no device state');
    return { cpu: this.cpu, devices: this.devices };
  }

  /** For a file: nothing may follow END. */
  async finish(): Promise<void> {
    for (;;) {
      const chunk = await this.source.read();
      if (chunk === null) return;
      this.stream.push(chunk);
      this.stream.next();
    }
  }
}

/** A blob in a memfd, for the hypervisor or the stub domain (the caller closes it). */
export function memfdOf(name: string, bytes: Uint8Array): number {
  const n = native();
  const fd = n.memfdCreate(name, Math.max(4096, bytes.length));
  new Uint8Array(n.mapShared(fd, bytes.length)).set(bytes);
  return fd;
}
