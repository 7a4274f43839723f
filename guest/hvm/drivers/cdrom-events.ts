// Media change on the IDE CD-ROMs, found the way Linux's sr driver finds it (sr_check_events,
// polled by the block layer's disk events every 2 s): GET EVENT STATUS NOTIFICATION for the
// media class (a NEW MEDIA event, the media-present bit), and TEST UNIT READY (which also takes
// the drive's pending UNIT ATTENTION). On a change the capacity is read again (READ CAPACITY)
// and the owner re-exposes /dev/hdX at the new size, as set_capacity_and_notify() does.
import { AtaError, type AtaPiix, type IdeDevice } from './ata-piix.js';

const GPCMD_GET_EVENT_STATUS_NOTIFICATION = 0x4a;
const GESN_MEDIA = 4;
const MEC_NEW_MEDIA = 2;
const MS_MEDIA_PRESENT = 2;
const SENSE_NOT_READY = 2;
const SENSE_UNIT_ATTENTION = 6;
export const CDROM_POLL_MS = 2000;

/** One poll: true when the medium may have changed (the caller reads the capacity again). */
export async function mediaChanged(ata: AtaPiix, dev: IdeDevice): Promise<boolean> {
  let present = dev.blocks > 0;
  let event = false;
  try {
    const r = await ata.packet(dev, Uint8Array.of(GPCMD_GET_EVENT_STATUS_NOTIFICATION, 1, 0, 0, 1 << GESN_MEDIA, 0, 0, 0, 8, 0, 0, 0), 8);
    if (r.length >= 6 && (r[2]! & 7) === GESN_MEDIA) {
      event = r[4]! === MEC_NEW_MEDIA;
      present = (r[5]! & MS_MEDIA_PRESENT) !== 0;
    }
  } catch (e) {
    if (!(e instanceof AtaError)) throw e; // a drive without GESN: TEST UNIT READY alone decides
  }
  try {
    await ata.packet(dev, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0);
  } catch (e) {
    if (!(e instanceof AtaError)) throw e;
    if (e.senseKey === SENSE_UNIT_ATTENTION) event = true;
    else if (e.senseKey === SENSE_NOT_READY) present = false; // (02/3A: no medium; the sense key says enough)
  }
  return event || present !== dev.blocks > 0;
}

/** Polls every ATAPI device; `onChange` gets the device after its capacity was re-read. */
export function watchCdroms(ata: AtaPiix, onChange: (dev: IdeDevice, oldBlocks: number) => Promise<void>, log: (m: string) => void): () => void {
  const cds = ata.devices.filter((d) => d.kind === 'atapi');
  if (cds.length === 0) return () => {};
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void (async () => {
      for (const dev of cds) {
        if (!(await mediaChanged(ata, dev))) continue;
        const old = dev.blocks;
        dev.blocks = await ata.cdCapacity(dev);
        await onChange(dev, old);
      }
    })()
      .catch((e) => log(`cdrom: media poll: ${(e as Error).message}`))
      .finally(() => (busy = false));
  }, CDROM_POLL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
