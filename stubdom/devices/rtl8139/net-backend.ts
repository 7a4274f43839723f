// Where an emulated NIC's frames go. The embedder connects it to the TAP
// `vif<domid>.<devid>-emu` (frames without a vnet header; offloads off on that TAP, since the
// RTL8139 has none): send() writes one frame, and the embedder calls nic.receive(frame) for
// each frame read from the TAP, pausing reads while nic.canReceive() is false and resuming on
// rxSpaceAvailable().
export interface NetBackend {
  /** One Ethernet frame (no FCS) the guest transmitted. The buffer is the backend's to keep. */
  send(frame: Uint8Array): void;
  /** The guest freed RX ring space (CAPR moved): a paused reader may resume. */
  rxSpaceAvailable?(): void;
}

/** Collects transmitted frames (tests, loopback diagnostics). */
export class CollectingNetBackend implements NetBackend {
  readonly frames: Uint8Array[] = [];
  spaceNotifications = 0;

  send(frame: Uint8Array): void {
    if (this.frames.length < 100_000) this.frames.push(frame);
  }

  rxSpaceAvailable(): void {
    this.spaceNotifications++;
  }
}
