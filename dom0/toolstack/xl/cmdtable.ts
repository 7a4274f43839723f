// Xen's xl command table (tools/xl/xl_cmdtable.c): every subcommand's name, whether it takes
// the global -N (dry run) and -f, and the one-line description, usage and option texts that
// `xl help CMD`, `xl CMD -h` and usage errors print. Kept whole, also for the commands xenode
// does not provide, because xl resolves unique prefixes against the whole table (`xl sh` is
// ambiguous in Xen: shutdown, sharing) and because a command added later gets Xen's help here.
//
// Data only: which commands xenode runs is decided where handlers are registered.

/** name, can_dryrun, modifies, description, usage, options. */
type Row = [string, boolean, boolean, string, string, string?];

const ROWS: Row[] = [
  ["create", true, true, "Create a domain from config file <filename>", "<ConfigFile> [options] [vars]", "-c                      Connect to the console after the domain is created.\n-d                      Enable debug messages.\n-e                      Do not wait in the background for the death of the domain.\n-F                      Run in foreground until death of the domain.\n-f FILE, --defconfig=FILE\n                     Use the given configuration file.\n-h                      Print this help.\n-n, --dryrun            Dry run - prints the resulting configuration\n                         (deprecated in favour of global -N option).\n-p                      Leave the domain paused after it is created.\n-q, --quiet             Quiet.\n-V, --vncviewer         Connect to the VNC display after the domain is created.\n-A, --vncviewer-autopass\n                        Pass VNC password to viewer via stdin.\n--ignore-global-affinity-masks Ignore global masks in xl.conf."],
  ["config-update", true, true, "Update a running domain's saved configuration, used when rebuilding the domain after reboot.\nWARNING: xl now has better capability to manage domain configuration, avoid using this command when possible", "<Domain> <ConfigFile> [options] [vars]", "-h                      Print this help.\n-f FILE, --defconfig=FILE\n                     Use the given configuration file.\n-d                      Enable debug messages.\n"],
  ["list", false, false, "List information about all/some domains", "[options] [Domain]\n", "-l, --long              Output all VM details\n-v, --verbose           Prints out UUIDs and security context\n-Z, --context           Prints out security context\n-c, --cpupool           Prints the cpupool the domain is in\n-n, --numa              Prints out NUMA node affinity"],
  ["destroy", false, true, "Terminate a domain immediately", "[options] <Domain>\n", "-f                      Permit destroying domain 0, which will only succeed\n                        when run from disaggregated toolstack domain with a\n                        hardware domain distinct from domain 0."],
  ["shutdown", false, true, "Issue a shutdown signal to a domain", "[options] <-a|Domain>", "-a, --all               Shutdown all guest domains.\n-h                      Print this help.\n-F                      Fallback to ACPI power event for HVM guests with\n                        no PV drivers.\n-w, --wait              Wait for guest(s) to shutdown.\n"],
  ["reboot", false, true, "Issue a reboot signal to a domain", "[options] <-a|Domain>", "-a, --all               Shutdown all guest domains.\n-h                      Print this help.\n-F                      Fallback to ACPI reset event for HVM guests with\n                        no PV drivers.\n-w, --wait              Wait for guest(s) to reboot.\n"],
  ["pci-attach", false, true, "Insert a new pass-through pci device", "<Domain> <PCI_SPEC_STRING>"],
  ["pci-detach", false, true, "Remove a domain's pass-through pci device", "<Domain> <PCI_SPEC_STRING>"],
  ["pci-list", false, false, "List pass-through pci devices for a domain", "<Domain>"],
  ["pci-assignable-add", false, true, "Make a device assignable for pci-passthru", "[options] <BDF>", "-n NAME, --name=NAME    Name the assignable device.\n-h                      Print this help.\n"],
  ["pci-assignable-remove", false, true, "Remove a device from being assignable", "[options] <BDF>|NAME", "-h                      Print this help.\n-r                      Attempt to re-assign the device to the\n                        original driver."],
  ["pci-assignable-list", false, false, "List all the assignable pci devices", "[options]", "-h                      Print this help.\n-n, --show-names        Display assignable device names where\n                        supplied.\n"],
  ["pause", false, true, "Pause execution of a domain", "<Domain>"],
  ["unpause", false, true, "Unpause a paused domain", "<Domain>"],
  ["console", false, false, "Attach to domain's console", "[options] <Domain>\n-t <type>       console type, pv , serial or vuart\n-n <number>     console number\n-e <escape>     escape character"],
  ["vncviewer", false, false, "Attach to domain's VNC server.", "[options] <Domain>\n--autopass               Pass VNC password to viewer via stdin and\n                         -autopass\n--vncviewer-autopass     (consistency alias for --autopass)"],
  ["save", false, true, "Save a domain state to restore later", "[options] <Domain> <CheckpointFile> [<ConfigFile>]", "-h  Print this help.\n-c  Leave domain running after creating the snapshot.\n-p  Leave domain paused after creating the snapshot.\n-D  Store the domain id in the configuration."],
  ["migrate", false, true, "Migrate a domain to another host", "[options] <Domain> <host>", "-h              Print this help.\n-C <config>     Send <config> instead of config file from creation.\n-s <sshcommand> Use <sshcommand> instead of ssh.  String will be passed\n                to sh. If empty, run <host> instead of ssh <host> xl\n                migrate-receive [-d -e]\n-e              Do not wait in the background (on <host>) for the death\n                of the domain.\n--debug         Print huge (!) amount of debug during the migration process.\n-p              Do not unpause domain after migrating it.\n-D              Preserve the domain id"],
  ["restore", false, true, "Restore a domain from a saved state", "[options] [<ConfigFile>] <CheckpointFile>", "-h                       Print this help.\n-p                       Do not unpause domain after restoring it.\n-e                       Do not wait in the background for the death of the domain.\n-d                       Enable debug messages.\n-V, --vncviewer          Connect to the VNC display after the domain is created.\n-A, --vncviewer-autopass Pass VNC password to viewer via stdin."],
  ["migrate-receive", false, true, "Restore a domain from a saved state", "- for internal use only"],
  ["suspend", false, true, "Suspend a domain to RAM", "<Domain>"],
  ["resume", false, true, "Resume a domain from RAM", "<Domain>"],
  ["dump-core", false, true, "Core dump a domain", "<Domain> <filename>"],
  ["cd-insert", true, true, "Insert a cdrom into a guest's cd drive", "<Domain> <VirtualDevice> <path>"],
  ["cd-eject", true, true, "Eject a cdrom from a guest's cd drive", "<Domain> <VirtualDevice>"],
  ["mem-max", false, true, "Set the maximum amount reservation for a domain", "<Domain> <MemMB['b'[bytes]|'k'[KB]|'m'[MB]|'g'[GB]|'t'[TB]]>"],
  ["mem-set", false, true, "Set the current memory usage for a domain", "<Domain> <MemMB['b'[bytes]|'k'[KB]|'m'[MB]|'g'[GB]|'t'[TB]]>"],
  ["button-press", false, true, "Indicate an ACPI button press to the domain", "<Domain> <Button>", "<Button> may be 'power' or 'sleep'."],
  ["vcpu-list", false, false, "List the VCPUs for all/some domains", "[Domain, ...]"],
  ["vcpu-pin", true, true, "Set which CPUs a VCPU can use", "[option] <Domain> <VCPU|all> <Hard affinity|-|all> <Soft affinity|-|all>", "-f, --force        undo an override pinning done by the kernel\n--ignore-global-affinity-masks Ignore global masks in xl.conf"],
  ["vcpu-set", false, true, "Set the number of active VCPUs allowed for the domain", "[option] <Domain> <vCPUs>", "-i, --ignore-host  Don't limit the vCPU based on the host CPU count"],
  ["vm-list", false, false, "List guest domains, excluding dom0, stubdoms, etc.", ""],
  ["info", false, false, "Get information about Xen host", "-n, --numa         List host NUMA topology information"],
  ["sharing", false, false, "Get information about page sharing", "[Domain]"],
  ["sched-credit", false, true, "Get/set credit scheduler parameters", "[-d <Domain> [-w[=WEIGHT]|-c[=CAP]]] [-s [-t TSLICE] [-r RATELIMIT]] [-p CPUPOOL]", "-d DOMAIN, --domain=DOMAIN        Domain to modify\n-w WEIGHT, --weight=WEIGHT        Weight (int)\n-c CAP, --cap=CAP                 Cap (int)\n-s         --schedparam           Query / modify scheduler parameters\n-t TSLICE, --tslice_ms=TSLICE     Set the timeslice, in milliseconds\n-r RLIMIT, --ratelimit_us=RLIMIT  Set the scheduling rate limit, in microseconds\n-m DLY, --migration_delay_us=DLY  Set the migration delay, in microseconds\n-p CPUPOOL, --cpupool=CPUPOOL     Restrict output to CPUPOOL"],
  ["sched-credit2", false, true, "Get/set credit2 scheduler parameters", "[-d <Domain> [-w[=WEIGHT]]] [-p CPUPOOL]", "-d DOMAIN, --domain=DOMAIN     Domain to modify\n-w WEIGHT, --weight=WEIGHT     Weight (int)\n-c CAP,    --cap=CAP           Cap (int)\n-s         --schedparam        Query / modify scheduler parameters\n-r RLIMIT, --ratelimit_us=RLIMIT Set the scheduling rate limit, in microseconds\n-p CPUPOOL, --cpupool=CPUPOOL  Restrict output to CPUPOOL"],
  ["sched-rtds", false, true, "Get/set rtds scheduler parameters", "[-d <Domain> [-v[=VCPUID/all]] [-p[=PERIOD]] [-b[=BUDGET]] [-e[=Extratime]]]", "-d DOMAIN, --domain=DOMAIN     Domain to modify\n-v VCPUID/all, --vcpuid=VCPUID/all    VCPU to modify or output;\n               Using '-v all' to modify/output all vcpus\n-p PERIOD, --period=PERIOD     Period (us)\n-b BUDGET, --budget=BUDGET     Budget (us)\n-e Extratime, --extratime=Extratime Extratime (1=yes, 0=no)\n"],
  ["domid", false, false, "Convert a domain name to domain id", "<DomainName>"],
  ["domname", false, false, "Convert a domain id to domain name", "<DomainId>"],
  ["rename", false, true, "Rename a domain", "<Domain> <NewDomainName>"],
  ["trigger", false, true, "Send a trigger to a domain", "<Domain> <nmi|reset|init|power|sleep|s3resume> [<VCPU>]"],
  ["sysrq", false, true, "Send a sysrq to a domain", "<Domain> <letter>"],
  ["debug-keys", false, true, "Send debug keys to Xen", "<Keys>"],
  ["set-parameters", false, true, "Set hypervisor parameters", "<Params>"],
  ["dmesg", false, false, "Read and/or clear dmesg buffer", "[-c]", "  -c                        Clear dmesg buffer as well as printing it"],
  ["top", false, false, "Monitor a host and the domains in real time", ""],
  ["network-attach", true, true, "Create a new virtual network device", "<Domain> [type=<type>] [mac=<mac>] [bridge=<bridge>] [ip=<ip>] [script=<script>] [backend=<BackDomain>] [vifname=<name>] [rate=<rate>] [model=<model>] [accel=<accel>] [mtu=<mtu>]"],
  ["network-list", false, false, "List virtual network interfaces for a domain", "<Domain(s)>"],
  ["network-detach", false, true, "Destroy a domain's virtual network device", "<Domain> <DevId|mac>"],
  ["channel-list", false, false, "List virtual channel devices for a domain", "<Domain(s)>"],
  ["block-attach", true, true, "Create a new virtual block device", "<Domain> <disk-spec-component(s)>..."],
  ["block-list", false, false, "List virtual block devices for a domain", "<Domain(s)>"],
  ["block-detach", false, true, "Destroy a domain's virtual block device", "[option] <Domain> <DevId>", "-f, --force        do not wait for the domain to release the device"],
  ["vtpm-attach", true, true, "Create a new virtual TPM device", "<Domain> [uuid=<uuid>] [backend=<BackDomain>]"],
  ["vtpm-list", false, false, "List virtual TPM devices for a domain", "<Domain(s)>"],
  ["vtpm-detach", false, true, "Destroy a domain's virtual TPM device", "<Domain> <DevId|uuid>"],
  ["vkb-attach", true, true, "Create a new virtual keyboard device", "<Domain> <vkb-spec-component(s)>..."],
  ["vkb-list", false, false, "List virtual keyboard devices for a domain", "<Domain(s)>"],
  ["vkb-detach", false, true, "Destroy a domain's virtual keyboard device", "<Domain> <DevId>"],
  ["vdispl-attach", true, true, "Create a new virtual display device", "<Domain> [backend=<BackDomain>] [be-alloc=<BackAlloc>] [connectors='<Connectors>']", "    BackAlloc  - set to 1 to if backend allocates display buffers\n    Connectors - list of connector's description in ID:WxH format,\n                 where: ID - unique connector ID, W - connector width,\n                 H - connector height: connectors='id0:800x600;id1:1024x768'\n"],
  ["vdispl-list", false, false, "List virtual display devices for a domain", "<Domain(s)>"],
  ["vdispl-detach", false, true, "Destroy a domain's virtual display device", "<Domain> <DevId>"],
  ["vsnd-attach", true, true, "Create a new virtual sound device", "<Domain> <vsnd-spec-component(s)>..."],
  ["vsnd-list", false, false, "List virtual sound devices for a domain", "<Domain(s)>"],
  ["vsnd-detach", false, true, "Destroy a domain's virtual sound device", "<Domain> <DevId>"],
  ["uptime", false, false, "Print uptime for all/some domains", "[-s] [Domain]"],
  ["claims", false, false, "List outstanding claim information about all domains", "", ""],
  ["cpupool-create", true, true, "Create a new CPU pool", "[options] [<ConfigFile>] [Variable=value ...]", "-h, --help                   Print this help.\n-f FILE, --defconfig=FILE    Use the given configuration file.\n-n, --dryrun                 Dry run - prints the resulting configuration.\n                              (deprecated in favour of global -N option).\n\nSee the xlcpupool.cfg(5) manpage for more information."],
  ["cpupool-list", false, false, "List CPU pools on host", "[-c|--cpus] [<CPU Pool>]", "-c, --cpus                     Output list of CPUs used by a pool"],
  ["cpupool-destroy", false, true, "Deactivates a CPU pool", "<CPU Pool>"],
  ["cpupool-rename", false, true, "Renames a CPU pool", "<CPU Pool> <new name>"],
  ["cpupool-cpu-add", false, true, "Adds a CPU to a CPU pool", "<CPU Pool> <CPU nr>|node:<node nr>"],
  ["cpupool-cpu-remove", false, true, "Removes a CPU from a CPU pool", "<CPU Pool> <CPU nr>|node:<node nr>"],
  ["cpupool-migrate", false, true, "Moves a domain into a CPU pool", "<Domain> <CPU Pool>"],
  ["cpupool-numa-split", false, true, "Splits up the machine into one CPU pool per NUMA node", ""],
  ["getenforce", false, false, "Returns the current enforcing mode of the Flask Xen security module", ""],
  ["setenforce", false, true, "Sets the current enforcing mode of the Flask Xen security module", "<1|0|Enforcing|Permissive>"],
  ["loadpolicy", false, true, "Loads a new policy into the Flask Xen security module", "<policy file>"],
  ["remus", false, true, "Enable Remus HA for domain", "[options] <Domain> [<host>]", "-i MS                   Checkpoint domain memory every MS milliseconds (def. 200ms).\n-u                      Disable memory checkpoint compression.\n-s <sshcommand>         Use <sshcommand> instead of ssh.  String will be passed\n                        to sh. If empty, run <host> instead of \n                        ssh <host> xl migrate-receive -r [-e]\n-e                      Do not wait in the background (on <host>) for the death\n                        of the domain.\n-N <netbufscript>       Use netbufscript to setup network buffering instead of the\n                        default script (/remus-netbuf-setup).\n-F                      Enable unsafe configurations [-b|-n|-d flags]. Use this option\n                        with caution as failover may not work as intended.\n-b                      Replicate memory checkpoints to /dev/null (blackhole).\n                        Works only in unsafe mode.\n-n                      Disable network output buffering. Works only in unsafe mode.\n-d                      Disable disk replication. Works only in unsafe mode.\n-c                      Enable COLO HA. It is conflict with -i and -b, and memory\n                        checkpoint must be disabled.\n-p                      Use COLO userspace proxy."],
  ["devd", false, true, "Daemon that listens for devices and launches backends", "[options]", "-F                      Run in the foreground.\n-p, --pidfile [FILE]    Write PID to pidfile when daemonizing."],
  ["psr-hwinfo", false, true, "Show hardware information for Platform Shared Resource", "[options]", "-m, --cmt       Show Cache Monitoring Technology (CMT) hardware info\n-a, --cat       Show Cache Allocation Technology (CAT) hardware info\n-b, --mba       Show Memory Bandwidth Allocation (MBA) hardware info\n"],
  ["psr-cmt-attach", false, true, "Attach Cache Monitoring Technology service to a domain", "<Domain>"],
  ["psr-cmt-detach", false, true, "Detach Cache Monitoring Technology service from a domain", "<Domain>"],
  ["psr-cmt-show", false, true, "Show Cache Monitoring Technology information", "<PSR-CMT-Type> <Domain>", "Available monitor types:\n\"cache-occupancy\":         Show L3 cache occupancy(KB)\n\"total-mem-bandwidth\":     Show total memory bandwidth(KB/s)\n\"local-mem-bandwidth\":     Show local memory bandwidth(KB/s)\n"],
  ["psr-cat-set", false, true, "Set cache capacity bitmasks(CBM) for a domain", "[options] <Domain> <CBM>", "-s <socket>       Specify the socket to process, otherwise all sockets are processed\n-l <level>        Specify the cache level to process, otherwise L3 cache is processed\n-c                Set code CBM if CDP is supported\n-d                Set data CBM if CDP is supported\n"],
  ["psr-cat-show", false, true, "Show Cache Allocation Technology information", "[options] <Domain>", "-l <level>        Specify the cache level to process, otherwise L3 cache is processed\n"],
  ["psr-mba-set", false, true, "Set throttling value (THRTL) for a domain", "[options] <Domain> <THRTL>", "-s <socket>       Specify the socket to process, otherwise all sockets are processed\n"],
  ["psr-mba-show", false, true, "Show Memory Bandwidth Allocation information", "<Domain>"],
  ["usbctrl-attach", false, true, "Create a virtual USB controller for a domain", "<Domain> [type=pv] [version=<version>] [ports=<number>]"],
  ["usbctrl-detach", false, true, "Remove the virtual USB controller specified by <DevId> for a domain", "<Domain> <DevId>"],
  ["usbdev-attach", false, true, "Attach a USB device to a domain", "<Domain> hostbus=<busnum> hostaddr=<devnum> [controller=<DevId> [port=<port>]]"],
  ["usbdev-detach", false, true, "Detach a USB device from a domain", "<Domain> <controller> <port>"],
  ["usb-list", false, false, "List information about all USB controllers and devices for a domain", "<Domain>"],
  ["qemu-monitor-command", false, true, "Issue a qemu monitor command to the device model of a domain", "<Domain> <Command>"],
  ["dt-overlay", false, true, "Add/Remove a device tree overlay to Xen device tree, attach/detach the device to a domain", "<operation=add|remove> <.dtbo> OR <operation=attach> <.dtbo> <Domain>", "-h print this help\n"],
  ["xenstore-quota-get", false, false, "List global or domain specific Xenstore quotas", "<Domain>|-g"],
  ["xenstore-quota-set", false, true, "Set global or domain specific Xenstore quotas", "<Domain>|-g <quota>=<val>..."],
];

export interface CmdSpec {
  name: string;
  canDryrun: boolean;
  modifies: boolean;
  desc: string;
  usage: string;
  options?: string;
}

export const CMD_TABLE: readonly CmdSpec[] = ROWS.map(([name, canDryrun, modifies, desc, usage, options]) => ({ name, canDryrun, modifies, desc, usage, options }));

/** cmdtable_lookup: an exact name, or a prefix of exactly one name. */
export function cmdtableLookup(s: string): CmdSpec | undefined {
  let found: CmdSpec | undefined;
  let count = 0;
  for (const c of CMD_TABLE) {
    if (!c.name.startsWith(s)) continue;
    if (c.name.length === s.length) return c;
    found = c;
    count++;
  }
  return count === 1 ? found : undefined;
}
