import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseDomainConfigText } from '../../dom0/toolstack/config/domain-config.js';
import { libxlJsonText, LibxlMap } from '../../dom0/toolstack/config/libxl-json.js';
import { domainConfigToLibxlJson } from '../../dom0/toolstack/config/xl-dry-run.js';

const example = (name: string) => readFileSync(new URL(`../../examples/${name}`, import.meta.url), 'utf8');
const UUID = 'c0ffee00-1234-4abc-8def-0123456789ab';
const dryRun = (text: string, hostCpus = 8) =>
  domainConfigToLibxlJson(parseDomainConfigText(`${text}uuid = "${UUID}"\n`, 't.cfg').config, { hostCpus });

describe('libxl JSON text (yajl, beautified)', () => {
  it('indents by four, puts empty maps on three lines and ends with a newline', () => {
    const v = new LibxlMap().set('a', 1).set('b', new LibxlMap()).set('c', ['x', 2n]).set('skip', undefined);
    expect(libxlJsonText(v)).toBe('{\n    "a": 1,\n    "b": {\n\n    },\n    "c": [\n        "x",\n        2\n    ]\n}\n');
  });

  it('escapes like yajl: control characters in upper-case hex, / left alone', () => {
    expect(libxlJsonText('a"b\\c/d\n\x01é')).toBe('"a\\"b\\\\c/d\\n\\u0001é"\n');
  });
});

describe('xl create -n', () => {
  it('prints linux-pv.cfg as libxl_domain_config', () => {
    expect(dryRun(example('linux-pv.cfg'))).toBe(`{
    "c_info": {
        "type": "pv",
        "name": "linux",
        "uuid": "${UUID}",
        "run_hotplug_scripts": "True"
    },
    "b_info": {
        "max_vcpus": 2,
        "avail_vcpus": [
            0,
            1
        ],
        "max_memkb": 262144,
        "target_memkb": 262144,
        "sched_params": {

        },
        "claim_mode": "True",
        "kernel": "/mnt/xen/linux/vmlinux",
        "cmdline": "root=/dev/xvda1 console=hvc0 init=/sbin/init rootfstype=ext4 rootflags=nobarrier",
        "type.pv": {

        },
        "arch_arm": {

        },
        "arch_x86": {

        }
    },
    "disks": [
        {
            "pdev_path": "/dev/vg01/linux0",
            "vdev": "xvda",
            "format": "raw",
            "readwrite": 1
        }
    ],
    "nics": [
        {
            "devid": 0,
            "mac": "00:16:3e:38:d4:07",
            "bridge": "eth0"
        }
    ],
    "on_reboot": "restart",
    "on_crash": "restart",
    "on_soft_reset": "soft_reset"
}
`);
  });

  it('prints winxp-hvm.cfg with its type.hvm part', () => {
    expect(dryRun(example('winxp-hvm.cfg'))).toBe(`{
    "c_info": {
        "type": "hvm",
        "name": "winxp",
        "uuid": "${UUID}",
        "run_hotplug_scripts": "True"
    },
    "b_info": {
        "max_vcpus": 2,
        "avail_vcpus": [
            0,
            1
        ],
        "max_memkb": 1048576,
        "target_memkb": 1048576,
        "sched_params": {

        },
        "claim_mode": "True",
        "type.hvm": {
            "vga": {

            },
            "vnc": {
                "enable": "True",
                "listen": ""
            },
            "sdl": {
                "enable": "False"
            },
            "spice": {

            },
            "boot": "c",
            "rdm": {

            }
        },
        "arch_arm": {

        },
        "arch_x86": {

        }
    },
    "disks": [
        {
            "pdev_path": "/dev/vg01/winxp0",
            "vdev": "hda",
            "format": "raw",
            "readwrite": 1
        },
        {
            "pdev_path": "/dev/loop0",
            "vdev": "hdc",
            "format": "raw",
            "removable": 1,
            "is_cdrom": 1
        }
    ],
    "nics": [
        {
            "devid": 0,
            "mac": "00:16:3e:38:d4:15",
            "bridge": "eth0"
        }
    ],
    "on_reboot": "restart",
    "on_crash": "restart",
    "on_soft_reset": "soft_reset"
}
`);
  });

  it('leaves out what the config did not set, and honours xl.conf options', () => {
    const json = domainConfigToLibxlJson(
      parseDomainConfigText(`name = "m"\nkernel = "/k"\nuuid = "${UUID}"\n`, 'm.cfg').config,
      { runHotplugScripts: false, claimMode: false },
    );
    expect(json).not.toMatch(/memkb|vcpus|disks|nics|on_reboot": "restart_rename/);
    expect(json).toContain('"run_hotplug_scripts": "False"');
    expect(json).toContain('"claim_mode": "False"');
    expect(json).toContain('"on_reboot": "restart"');
  });

  it('prints pinning, scheduler, shadow memory, actions and the HVM extras in IDL order', () => {
    const json = dryRun([
      'name = "p"', 'type = "hvm"', 'vcpus = 2', 'maxvcpus = 3', 'memory = 512', 'maxmem = 1024',
      "cpus = [ '0-2,^1', 'all' ]", 'cpu_weight = 512', 'cap = 50', 'shadow_memory = 8',
      'on_poweroff = "preserve"', 'on_reboot = "rename-restart"', 'on_crash = "coredump-restart"',
      "serial = [ 'pty', 'file:/tmp/s' ]", 'stdvga = 1', 'vncdisplay = 3', 'vncunused = 0', 'acpi = 1',
      'device_model_version = "qemu-xen"', 'device_model_stubdomain_override = 1', '',
    ].join('\n'), 4);
    expect(json).toContain(`
        "max_vcpus": 3,
        "avail_vcpus": [
            0,
            1
        ],
        "vcpu_hard_affinity": [
            [
                0,
                2
            ],
            [
                0,
                1,
                2,
                3
            ]
        ],
        "numa_placement": "False",
        "max_memkb": 1048576,
        "target_memkb": 524288,
        "shadow_memkb": 8192,
        "device_model_version": "qemu_xen",
        "device_model_stubdomain": "True",
        "sched_params": {
            "weight": 512,
            "cap": 50
        },
        "claim_mode": "True",
        "acpi": "True",
        "type.hvm": {
            "vga": {
                "kind": "std"
            },
            "vnc": {
                "display": 3,
                "findunused": "False"
            },
            "sdl": {

            },
            "spice": {

            },
            "serial_list": [
                "pty",
                "file:/tmp/s"
            ],
            "rdm": {

            }
        },`);
    expect(json).toContain(`
    "on_poweroff": "preserve",
    "on_reboot": "restart_rename",
    "on_crash": "coredump_restart",
    "on_soft_reset": "soft_reset"
}
`);
  });

  it('gives a PV guest with vnc=1 a framebuffer and keyboard', () => {
    const json = dryRun('name = "f"\nkernel = "/k"\nvnc = 1\nvnclisten = "127.0.0.1"\n');
    expect(json).toContain(`
    "vfbs": [
        {
            "devid": 0,
            "vnc": {
                "enable": "True",
                "listen": "127.0.0.1"
            },
            "sdl": {

            }
        }
    ],
    "vkbs": [
        {
            "devid": 0
        }
    ],`);
  });
});
