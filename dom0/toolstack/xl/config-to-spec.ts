// From an xl config file to what dom0's domain builder needs. Extra `key=value` words after
// the file name on `xl create` are appended as config lines, as xl does.
import { readFileSync } from 'node:fs';
import { cpus as hostCpus } from 'node:os';
import { resolve } from 'node:path';
import {
  ConfigError,
  affinityPerVcpu,
  domainConfigToLibxlJson,
  formatWarning,
  parseDomainConfigText,
} from '../config/index.js';
import type { BuildSpec } from '../build-spec.js';

export interface LoadedSpec {
  spec: BuildSpec;
  warnings: string[];
  /** What `xl create -n` prints. */
  dryRun: string;
}

export function loadBuildSpec(file: string, overrides: string[] = []): LoadedSpec {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError({ file, line: 0, column: 0 }, `cannot read config file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  for (const o of overrides) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*\s*\+?=/.test(o)) throw new ConfigError({ file: 'command line', line: 0, column: 0 }, `"${o}" is not a key=value setting`);
    text += `\n${o}\n`;
  }
  const { config: c, warnings } = parseDomainConfigText(text, file);
  const nrCpus = hostCpus().length;
  const perVcpu = c.cpus ? affinityPerVcpu(c.cpus, c.maxVcpus, nrCpus) : undefined;
  const spec: BuildSpec = {
    name: c.name,
    uuid: c.uuid,
    type: c.type,
    memoryMiB: c.memoryMiB,
    maxMemMiB: c.maxMemMiB,
    vcpus: c.vcpus,
    maxVcpus: c.maxVcpus,
    cpus: perVcpu ? [...new Set(perVcpu.flat())].sort((a, b) => a - b) : undefined,
    cmdline: c.cmdline ?? '',
    kernel: c.kernel,
    ramdisk: c.ramdisk,
    onPoweroff: c.onPoweroff,
    onReboot: c.onReboot,
    onWatchdog: c.onWatchdog,
    onCrash: c.onCrash,
    weight: c.cpuWeight,
    cap: c.cap,
    config: { ...c, specified: [...c.specified] },
  };
  const dryRun = domainConfigToLibxlJson(c);
  spec.libxlJson = JSON.parse(dryRun);
  return { spec, warnings: warnings.map(formatWarning), dryRun };
}
