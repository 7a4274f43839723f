// The toolstack's controls of a running device model (xl trigger, cd-insert, cd-eject), carried
// out in the device model's own thread. Its loop blocks in the ioreq wait, so controls arrive on
// a MessagePort that the loop drains synchronously (receiveMessageOnPort) on each pass; the
// stub domain rings the doorbell after posting one. Answers go back on the same port.
import { fstatSync, closeSync } from 'node:fs';
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { PcMachine } from './machine.js';
import type { DmControl, DmControlResult } from './protocol.js';
import { AtapiCdrom } from './devices/ide/atapi-cdrom.js';
import { FileBacking } from './devices/ide/block-backing.js';

/** A control as the stub domain posts it: `seq` matches the answer; `fd` is the new disc. */
export interface ControlMessage {
  seq: number;
  control: DmControl;
  fd: number;
}

export interface ControlAnswer {
  seq: number;
  result?: DmControlResult;
  error?: { errno: string; message: string };
}

class ControlError extends Error {
  constructor(
    readonly errno: string,
    message: string,
  ) {
    super(message);
  }
}

/** What a control needs besides the machine: the NMI line to the guest's vCPU runtime. */
export interface ControlPlatform {
  nmi(vcpu: number): void;
}

function carryOut(machine: PcMachine, platform: ControlPlatform, m: ControlMessage, log: (msg: string) => void): DmControlResult {
  const c = m.control;
  if (c.kind === 'nmi') {
    platform.nmi(c.vcpu);
    log(`NMI to vCPU ${c.vcpu}`);
    return {};
  }
  if (c.kind === 'button') {
    if (c.button === 'power') machine.acpi.pressPowerButton();
    else machine.acpi.pressSleepButton();
    const enabled = machine.acpi.powerButtonEnabled;
    log(`ACPI ${c.button} button pressed${enabled ? '' : ' (the guest has not enabled its SCI: latched in PM1a_STS)'}`);
    return { enabled };
  }
  const index = c.index;
  const drive = Number.isInteger(index) && index >= 0 && index < 4 ? machine.ide.channels[index >> 1]?.drives[index & 1] : null;
  if (!(drive instanceof AtapiCdrom)) throw new ControlError('ENODEV', `IDE position ${index} has no CD-ROM drive`);
  if (!c.insert) {
    drive.changeMedium(null);
    log(`hd${'abcd'[index]}: medium ejected`);
    return { mediumBytes: 0 };
  }
  if (m.fd < 0) throw new ControlError('EINVAL', 'cd-insert needs the image');
  const st = fstatSync(m.fd);
  if (!st.isFile() && !st.isBlockDevice()) throw new ControlError('EINVAL', 'the image is not a file or block device');
  const backing = new FileBacking(m.fd, true, st.size, true);
  drive.changeMedium(backing);
  log(`hd${'abcd'[index]}: new medium, ${st.size} bytes`);
  return { mediumBytes: st.size };
}

/** Serves every control waiting on `port`; returns how many there were. */
export function serveControls(port: MessagePort, machine: PcMachine, platform: ControlPlatform, log: (msg: string) => void): number {
  let n = 0;
  for (let got = receiveMessageOnPort(port); got; got = receiveMessageOnPort(port)) {
    n++;
    const m = got.message as ControlMessage;
    let answer: ControlAnswer;
    try {
      answer = { seq: m.seq, result: carryOut(machine, platform, m, log) };
    } catch (e) {
      if (m.fd >= 0) try { closeSync(m.fd); } catch { /* already the backing's, or gone */ }
      answer = { seq: m.seq, error: { errno: e instanceof ControlError ? e.errno : 'EIO', message: (e as Error).message } };
    }
    port.postMessage(answer);
  }
  return n;
}
