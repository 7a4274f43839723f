// The stub domain's device models: public surface for the embedder (dom0's device-model
// launcher, the stub-domain worker, later the KVM vCPU loop). See README.md.
export { PcMachine, ideIndexForVdev, COM_PORTS, type MachineConfig, type MachineNicConfig, type MachineDiskConfig, type MachineSerialConfig, type MachineMetrics } from './machine.js';
export { GuestMemory, type RamRegion } from './device-model/guest-memory.js';
export { AddressBus, type IoHandler, type BusRegion } from './device-model/address-bus.js';
export { IrqLines, IrqSource, RecordingInterruptSink, type InterruptSink } from './device-model/interrupts.js';
export { IoreqDispatcher, type PciConfigTarget } from './device-model/ioreq-dispatch.js';
export { IoreqServer, type IoreqServerOptions, type RunOptions } from './device-model/ioreq-server.js';
export { IOREQ_WAIT_WORD_OFFSET, IOREQ_WAIT_WORD_STATE_SHIFT } from '../drivers/wire/ioreq.js';
export { IoreqVcpuPort, IoreqTimeoutError } from '../drivers/ioreq/ioreq-vcpu.js';
export { atomicsFutex, type FutexOps, type WordRef } from '../drivers/ioreq/futex.js';
export { defaultLogger, silentLogger, type DeviceLogger } from './device-model/log.js';
export { Rtl8139 } from './devices/rtl8139/rtl8139.js';
export { CollectingNetBackend, type NetBackend } from './devices/rtl8139/net-backend.js';
export { Piix3Ide } from './devices/ide/piix3-ide.js';
export { FileBacking, type BlockBacking } from './devices/ide/block-backing.js';
export { Uart16550, CollectingSerialBackend, type SerialBackend } from './devices/uart16550/uart16550.js';
export { XenPlatform } from './devices/xen-platform/xen-platform.js';
export { TapNetBackend, emuTapName } from './devices/rtl8139/tap-backend.js';
export { PtySerialBackend } from './devices/uart16550/pty-backend.js';
export type { FdIo } from './device-model/fd-io.js';
