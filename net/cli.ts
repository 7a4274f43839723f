// `xenode lan ...` and `xenode uplink ...` (bin/xenode.ts hands these over).
//
//   xenode lan up [--bridge B] [--name NS]      the test LAN host, with dnsmasq, joined to B
//   xenode lan down [--bridge B] [--name NS]
//   xenode lan status [--name NS]
//   xenode lan exec [--name NS] -- CMD ARGS...  run a real tool on the LAN host (ping, curl, iperf3)
//   xenode uplink BRIDGE IFACE [--yes]          put the machine's own IFACE into BRIDGE
import { existsSync } from 'node:fs';
import { lanDown, lanExecSync, lanSpec, lanStatus, lanUp, lanHostAddress, type LanSpec } from './test-lan.js';
import { applyUplink, readIfState, uplinkPlan, UPLINK_WARNING } from './uplink.js';

export const LAN_USAGE = `usage: xenode lan up|down|status [--bridge BRIDGE] [--name NETNS]
       xenode lan exec [--name NETNS] -- COMMAND [ARGS...]
  up      create the LAN host: namespace NETNS (default xenode-lan) joined to BRIDGE (default
          xenbr0, created if missing) by a veth, address 198.18.0.1/15, dnsmasq serving DHCP
          198.18.0.100-199 with 198.18.0.1 as the router
  down    remove it (and the bridge, if it was created for it and nothing else uses it)
  status  what is up, and the DHCP leases given
  exec    run COMMAND on the LAN host (ping, curl, iperf3 ...)
`;

export const UPLINK_USAGE = `usage: xenode uplink BRIDGE IFACE [--yes]
  Bridges guests onto a real LAN: IFACE (this machine's own network interface) becomes a port
  of BRIDGE and its addresses and routes move to BRIDGE. Without --yes, only prints the plan.
`;

function opts(argv: string[]): { bridge?: string; name?: string; rest: string[] } {
  const o: { bridge?: string; name?: string; rest: string[] } = { rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      o.rest.push(...argv.slice(i + 1));
      break;
    }
    if (a === '--bridge' || a === '-b') o.bridge = argv[++i];
    else if (a === '--name' || a === '-n') o.name = argv[++i];
    else o.rest.push(a);
  }
  return o;
}

function describe(spec: LanSpec): string {
  const st = lanStatus(spec);
  if (!st.up) return `LAN ${spec.netns}: down\n`;
  let s = `LAN ${spec.netns}: up on bridge ${st.bridge}, host ${spec.address}, DHCP ${st.dhcp ? `${spec.dhcpRange[0]}-${spec.dhcpRange[1]}` : 'not running'}\n`;
  for (const l of st.leases) s += `  lease ${l.address} ${l.mac} ${l.hostname}\n`;
  return s;
}

export async function lanCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const o = opts(rest);
  const spec = lanSpec({ bridge: o.bridge, netns: o.name });
  switch (sub) {
    case 'up':
      await lanUp(spec);
      process.stdout.write(describe(spec));
      process.stdout.write(`run tools there with: xenode lan exec -- ping ${lanHostAddress(spec)}\n`);
      return 0;
    case 'down':
      lanDown(spec);
      process.stdout.write(`LAN ${spec.netns}: down\n`);
      return 0;
    case 'status':
      process.stdout.write(describe(spec));
      return lanStatus(spec).up ? 0 : 3;
    case 'exec': {
      if (o.rest.length === 0) throw new Error('xenode lan exec needs a command: xenode lan exec -- ping 198.18.0.100');
      const r = lanExecSync(spec, o.rest, { inherit: true });
      if (r.error) throw r.error;
      return r.status ?? (r.signal ? 128 : 1);
    }
    default:
      process.stderr.write(LAN_USAGE);
      return sub === 'help' || sub === '--help' ? 0 : 1;
  }
}

export function uplinkCommand(argv: string[]): number {
  const yes = argv.includes('--yes');
  const [bridge, iface] = argv.filter((a) => !a.startsWith('--'));
  if (!bridge || !iface) {
    process.stderr.write(UPLINK_USAGE);
    return 1;
  }
  if (!existsSync(`/sys/class/net/${iface}`)) throw new Error(`no interface ${iface}`);
  const plan = uplinkPlan(bridge, iface, readIfState(iface), existsSync(`/sys/class/net/${bridge}/bridge`));
  const warning = UPLINK_WARNING.replace(/IFACE/g, iface).replace(/BRIDGE/g, bridge);
  if (!yes) {
    process.stdout.write(`${warning}\n\nWould run (ip -batch):\n${plan.apply.map((l) => `  ip ${l}`).join('\n')}\n`);
    process.stdout.write(`To undo:\n${plan.undo.map((l) => `  ip ${l}`).join('\n')}\n\nNothing changed. Run again with --yes to do it.\n`);
    return 0;
  }
  process.stderr.write(`${warning}\n`);
  applyUplink(plan);
  process.stdout.write(`${iface} is now a port of ${bridge}. To undo:\n${plan.undo.map((l) => `  ip ${l}`).join('\n')}\n`);
  return 0;
}
