// The toolstack's configuration parsers: xl.cfg files, disk and vif specs, and xl's dry-run JSON.
export { ConfigError, COMMAND_LINE, formatConfigMessage, formatWarning, type ConfigWarning, type SourcePos } from './config-error.js';
export { parseXlCfg, XlCfg, type RawSetting, type RawValue, type RawString, type RawList } from './xl-cfg-parser.js';
export {
  parseDomainConfigFile, parseDomainConfigText, SHUTDOWN_ACTIONS,
  type DomainConfig, type DomainDisk, type DomainNic, type DomainType, type HvmOptions, type ParsedDomainConfig,
  type SdlOptions, type ShutdownAction, type VncOptions,
} from './domain-config.js';
export {
  parseDiskSpec, validateDiskVdev, diskToLibxlJson, diskDryRunJson,
  type LibxlDeviceDisk, type DiskBackend, type DiskFormat, type DiskSpecification,
} from './disk-spec.js';
export { parseVdev, vdevToDevid, devidToVdev, type VdevInfo, type VdevKind } from '../../../common/vdev-number.js';
export {
  parseVifSpec, parseVifArgs, parseMac, resolveNicDefaults, generateXenMac, nicToLibxlJson, vifDryRunJson,
  DEFAULT_BRIDGE, DEFAULT_MTU, DEFAULT_NIC_MODEL, DEFAULT_VIF_SCRIPT, MAX_IFNAME_LEN, XEN_OUI,
  type LibxlDeviceNic, type ResolvedNic, type NicType, type GuestType, type NicDefaultsContext, type ParsedNic,
} from './vif-spec.js';
export { parseVifRate, VifRateError, type VifRate } from './vif-rate.js';
export { parseCpuSet, cpuSetToCpus, affinityPerVcpu, type CpuAffinity, type CpuSet, type CpuTerm } from './cpu-affinity.js';
export { domainConfigToLibxlJson, domainConfigToLibxlMap, type DryRunOptions } from './xl-dry-run.js';
export { libxlJsonText, LibxlMap, type LibxlJson } from './libxl-json.js';
