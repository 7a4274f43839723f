// From an xl config file to what dom0's domain builder needs. Extra `key=value` words after
// the file name on `xl create` are appended as config lines, as xl does.
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { cpus as hostCpus } from 'node:os';
import { resolve } from 'node:path';
import {
  COMMAND_LINE,
  ConfigError,
  affinityPerVcpu,
  domainConfigToLibxlJson,
  formatWarning,
  parseDomainConfigText,
  parseXlCfg,
  type DomainConfig,
  type SourcePos,
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
  // Settings after the file's last line came from the command line: say so, not "FILE:7".
  const fileLines = text.split('\n').length;
  const where = (e: ConfigError): ConfigError =>
    e.line > fileLines ? new ConfigError({ ...COMMAND_LINE, key: e.key }, e.detail) : e;
  for (const o of overrides) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*\s*\+?=/.test(o)) throw new ConfigError({ file: 'command line', line: 0, column: 0 }, `"${o}" is not a key=value setting`);
    text += `\n${o}\n`;
  }
  let parsed: ReturnType<typeof parseDomainConfigText>;
  try {
    parsed = parseDomainConfigText(text, file);
    checkXenodeLimits(parsed.config, text, file);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const all = e.errors.map(where);
    throw all.length > 1 ? new ConfigError(all[0]!, all[0]!.detail, all) : all[0]!;
  }
  const { config: c, warnings } = parsed;
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
    // An HVM guest's kernel and ramdisk are loaded by the hypervisor, whose working directory
    // is not ours: relative paths mean relative to where xl runs, as with libxl.
    kernel: c.type === 'hvm' && c.kernel ? resolve(c.kernel) : c.kernel,
    ramdisk: c.type === 'hvm' && c.ramdisk ? resolve(c.ramdisk) : c.ramdisk,
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

/**
 * What dom0's toolstack and the hypervisor accept beyond xl's own rules, checked here so that
 * the error names the file, line and key before anything is created (the toolstack checks
 * again: it cannot trust its client).
 */
function checkXenodeLimits(c: DomainConfig, text: string, file: string): void {
  const cfg = parseXlCfg(text, file);
  const pos = (...keys: string[]): SourcePos => {
    for (const key of keys) {
      const s = cfg.get(key);
      if (s) return cfg.pos(s, key);
    }
    return { file, line: 0, column: 0, key: keys[0] };
  };
  const errors: ConfigError[] = [];
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/.test(c.name)) {
    errors.push(new ConfigError(pos('name'), `domain name \`${c.name}' is not valid: letters, digits, '.', '_', '+' and '-' (starting with a letter or digit), at most 64`));
  }
  if (c.memoryMiB < 16) errors.push(new ConfigError(pos('memory', 'maxmem'), `${c.memoryMiB} MiB is too little: a domain needs at least 16 MiB`));
  if (c.maxMemMiB > 1 << 20) errors.push(new ConfigError(pos('maxmem', 'memory'), `${c.maxMemMiB} MiB is more than the 1 TiB a domain may have`));
  if (c.maxVcpus > 128) errors.push(new ConfigError(pos('maxvcpus', 'vcpus'), `${c.maxVcpus} vCPUs: a domain may have at most 128`));
  if ((c.cmdline ?? '').length > 1023) {
    errors.push(new ConfigError(pos('cmdline', 'extra', 'root'), `the kernel command line is ${(c.cmdline ?? '').length} bytes: at most 1023 fit in start_info`));
  }
  if (c.type === 'hvm') {
    // HVM with `kernel` = direct Linux boot on KVM (docs/kvm.md): the files must be there.
    for (const key of ['kernel', 'ramdisk'] as const) {
      const v = c[key];
      if (v === undefined) continue;
      try {
        accessSync(resolve(v), fsConstants.R_OK);
        if (!statSync(resolve(v)).isFile()) errors.push(new ConfigError(pos(key), `${key} ${v} is not a regular file`));
      } catch (e) {
        errors.push(new ConfigError(pos(key), `cannot read ${key} ${v}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`));
      }
    }
    if (c.ramdisk !== undefined && c.kernel === undefined) errors.push(new ConfigError(pos('ramdisk'), 'ramdisk without kernel: an HVM guest boots a ramdisk only with a Linux kernel'));
  }
  ConfigError.throwIfAny(errors);
}
