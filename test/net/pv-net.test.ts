// PV networking end to end: guests created with `xl create` from configs with vif = [...],
// their eth0 a TAP in the guest's own namespace driven by netfront, every frame crossing the
// netif rings to dom0's netback and its vif TAP, plugged by vif-bridge into a private
// bridge where the test LAN host (a namespace with dnsmasq) lives.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { Instance } from '../helpers/instance.js';
import { TestLan, leftovers, netShouldSkip } from '../helpers/lan.js';
import { linkStats } from '../../net/ip.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WEB_IP = '198.18.1.10';
const WEB_MAC = '00:16:3e:38:d4:07';

describe.skipIf(netShouldSkip())('PV networking: guests on a LAN', () => {
  const xn = new Instance('pvnet');
  const lan = new TestLan('pvn', xn.dir);
  const br = lan.bridge;
  const ids: Record<string, number> = {};

  const stats = async (dom: string): Promise<Record<string, number>> => {
    const out = await xn.xlOk('network-stats', dom);
    const r: Record<string, number> = {};
    for (const m of out.matchAll(/^\s+(\w+)\s+([\d.]+)$/gm)) r[m[1]!] = Number(m[2]);
    return r;
  };

  /** `xl create` of a PV guest config with a vif list, as a user writes it. */
  /** A one-shot iperf3 server on the LAN host; report() is its JSON once the client is done. */
  const iperfServer = () => {
    const proc = lan.spawn(['iperf3', '-s', '-1', '-J']);
    let out = '';
    proc.stdout!.on('data', (d) => (out += String(d)));
    const done = new Promise((r) => proc.once('exit', r));
    return {
      report: async (ms: number) => {
        await Promise.race([done, sleep(ms)]);
        return JSON.parse(out);
      },
      kill: () => proc.kill(),
    };
  };
  const create = async (name: string, extra: string, vif: string, more = ''): Promise<number> => {
    const cfg = xn.config(name, `name = "${name}"\ntype = "pv"\nmemory = 128\nvcpus = 1\nextra = "${extra}"\nvif = [ '${vif}' ]\n${more}`);
    await xn.xlOk('create', cfg);
    return Number((await xn.xlOk('domid', name)).trim());
  };

  beforeAll(async () => {
    await xn.start();
    await lan.up();
    // A web service whose address comes from its vif's ip= (the toolstack's), and a shell
    // guest that asks the LAN's dnsmasq for one (ip=dhcp on its command line).
    // Named vifs where the name does not matter, so this suite meets another xenode's
    // vif<domid>.<devid> as little as possible on a shared machine; sh1 keeps Xen's name.
    ids.web = await create('web', 'init=/usr/bin/python3 -m http.server 80', `bridge=${br},mac=${WEB_MAC},ip=${WEB_IP}/15,vifname=xnpvn-web`);
    ids.sh1 = await create('sh1', 'console=hvc0 ip=dhcp', `bridge=${br}`);
    await xn.waitForShell('sh1');
  }, 60_000);

  afterAll(async () => {
    await xn.stop();
    lan.down();
  }, 60_000);

  it('the LAN host pings a guest and fetches a page from the web service inside it', async () => {
    await xn.waitFor('web to answer ping', () => lan.ping(WEB_IP, 1), 15_000);
    expect(lan.ping(WEB_IP, 3)).toBe(true);
    let page = '';
    await xn.waitFor('the web service', () => {
      const r = lan.exec(['curl', '-s', '-m', '3', `http://${WEB_IP}/`]);
      page = r.out;
      return r.code === 0;
    }, 15_000);
    expect(page).toContain('Directory listing for /');
    // A bigger transfer: segmentation offload carries it as GSO trains over the rings.
    const big = lan.exec(['curl', '-s', '-m', '20', '-o', '/dev/null', '-w', '%{size_download}', `http://${WEB_IP}/usr/bin/python3`]);
    expect(Number(big.out)).toBe(readFileSync('/usr/bin/python3').length);
    const st = await stats('web');
    expect(st.tx_gso).toBeGreaterThan(0);
    expect(st.tx_csum_offload).toBeGreaterThan(0);
  });

  it('request/response traffic is busy-polled on both sides, not slept on (and both sides say so)', async () => {
    const before = await stats('web');
    // 100 pings back to back (-A: the next as soon as the answer is in), as a request/response
    // benchmark sends them: each a lone request whose answer comes within microseconds.
    expect(lan.exec(['ping', '-A', '-c', '100', '-W', '2', WEB_IP]).code).toBe(0);
    const after = await stats('web');
    const polls = after.busy_polls! - before.busy_polls!;
    const hits = after.busy_poll_hits! - before.busy_poll_hits!;
    // netback found most answers by polling the TX ring (and the guest polled its TAP for
    // them, or the answer would have waited for two more wake-ups).
    // Not every exchange (a busy machine makes spins miss, and 4 misses back polling off for
    // 64 chances), but it happens and mostly finds the answer.
    expect(polls).toBeGreaterThanOrEqual(20);
    expect(hits).toBeGreaterThanOrEqual(polls / 2);
  });

  it('a guest gets its address by DHCP from the LAN\'s dnsmasq (ip=dhcp)', async () => {
    const log = xn.consoleLog('sh1');
    const m = /IP-Config: Got DHCP answer from 198\.18\.0\.1, my address is (198\.18\.0\.\d+)/.exec(log);
    expect(m, log).not.toBeNull();
    const addr = m![1]!;
    const mac = /eth0: .*MAC ([0-9a-f:]{17})/.exec(log)?.[1];
    expect(lan.leases()).toContainEqual(expect.objectContaining({ mac, address: addr }));
    expect(await xn.consoleRun('sh1', 'ip -4 -o addr show dev eth0')).toContain(`${addr}/15`);
    expect(await xn.consoleRun('sh1', 'ip route show default')).toContain('via 198.18.0.1 dev eth0');
    expect(lan.ping(addr, 2)).toBe(true);
  });

  it('guest to guest across the bridge', async () => {
    const out = await xn.consoleRun('sh1', `ping -c 3 -i 0.2 -W 2 ${WEB_IP} | tail -2; curl -s -m 5 http://${WEB_IP}/ | grep -c '<h1>Directory'`, 20_000);
    expect(out).toContain('3 received, 0% packet loss');
    expect(out).toMatch(/^1$/m);
  });

  it('the guest\'s namespace holds only lo and eth0, and its frames show on vif<domid>.0', async () => {
    const links = (await xn.consoleRun('sh1', "ip -o link show | awk -F': ' '{print $2}'")).trim().split('\n');
    expect(links).toEqual(['lo', 'eth0']);
    const vif = `vif${ids.sh1}.0`;
    expect(existsSync(`/sys/class/net/${vif}/brport`)).toBe(true);
    expect(readFileSync(`/sys/class/net/${vif}/master/uevent`, 'utf8')).toContain(`INTERFACE=${br}`);
    // Xen's dummy backend MAC: a bridge never takes it as its own.
    expect(readFileSync(`/sys/class/net/${vif}/address`, 'utf8').trim()).toBe('fe:ff:ff:ff:ff:ff');
    const before = linkStats(vif);
    const nb = await stats('sh1');
    await xn.consoleRun('sh1', 'ping -c 20 -i 0.05 -W 2 198.18.0.1 > /dev/null');
    const after = linkStats(vif);
    // The guest's echo requests are what dom0 receives on its vif, its replies what it sends.
    expect(after.rxPackets - before.rxPackets).toBeGreaterThanOrEqual(20);
    expect(after.txPackets - before.txPackets).toBeGreaterThanOrEqual(20);
    const na = await stats('sh1');
    expect(na.tx_packets! - nb.tx_packets!).toBeGreaterThanOrEqual(20);
    expect(na.rx_packets! - nb.rx_packets!).toBeGreaterThanOrEqual(20);
    expect(na.connected).toBe(1);
  });

  it('xl network-list shows Xen\'s columns', async () => {
    const out = await xn.xlOk('network-list', 'web');
    const [head, row] = out.split('\n');
    expect(head).toBe('Idx BE Mac Addr.         handle state evt-ch   tx-/rx-ring-ref BE-path                       ');
    expect(row).toMatch(new RegExp(`^0   0  ${WEB_MAC}     0     4 +\\d+ +\\d+/\\d+ +/local/domain/0/backend/vif/${ids.web}/0 *$`));
  });

  it('hot-attach and detach a NIC while traffic flows on the other', async () => {
    // 300 pings at 100/s to the web guest for the whole exchange.
    const flood = lan.spawn(['ping', '-c', '300', '-i', '0.01', '-W', '1', WEB_IP]);
    let floodOut = '';
    flood.stdout!.on('data', (d) => (floodOut += String(d)));
    const floodDone = new Promise((r) => flood.once('exit', r));
    await xn.xlOk('network-attach', 'sh1', `bridge=${br}`, 'ip=198.18.1.21/15', 'vifname=xnpvn-hot');
    const rows = (await xn.xlOk('network-list', 'sh1')).trim().split('\n');
    expect(rows).toHaveLength(3);
    await xn.waitFor('eth1 in the guest', async () => (await xn.consoleRun('sh1', 'ip -o link show eth1 2>&1')).includes('eth1:'), 15_000);
    // The hot-plugged vif's ip= is its address, as at boot: the guest kernel configures it.
    await xn.waitFor('eth1 configured from its vif ip=', async () => (await xn.consoleRun('sh1', 'ip -o -4 addr show eth1')).includes('198.18.1.21/15'), 15_000);
    expect(await xn.consoleRun('sh1', 'ping -I eth1 -c 3 -i 0.2 -W 2 198.18.0.1 | tail -2', 15_000)).toContain('0% packet loss');
    expect(existsSync('/sys/class/net/xnpvn-hot/brport')).toBe(true);
    await xn.xlOk('network-detach', 'sh1', '1');
    expect((await xn.xlOk('network-list', 'sh1')).trim().split('\n')).toHaveLength(2);
    expect(existsSync('/sys/class/net/xnpvn-hot')).toBe(false);
    await xn.waitFor('eth1 gone from the guest', async () => (await xn.consoleRun('sh1', 'ip -o link show eth1 2>&1')).includes('does not exist'), 10_000);
    await floodDone;
    const loss = Number(/(\d+(?:\.\d+)?)% packet loss/.exec(floodOut)?.[1] ?? '100');
    expect(loss, floodOut).toBeLessThanOrEqual(2);
  });

  it('a guest takes more NICs over its life than it has at once: ten attach/detach cycles', async () => {
    for (let i = 0; i < 10; i++) {
      await xn.xlOk('network-attach', 'sh1', `bridge=${br}`, `vifname=xnpvn-c${i}`);
      const rows = (await xn.xlOk('network-list', 'sh1')).trim().split('\n');
      expect(rows).toHaveLength(3);
      const devid = rows[2]!.split(/\s+/)[0]!;
      await xn.waitFor(`cycle ${i}: a second NIC in the guest`, async () => (await xn.consoleRun('sh1', 'ip -o link | grep -c eth')).trim().endsWith('2'), 15_000);
      await xn.xlOk('network-detach', 'sh1', devid);
      await xn.waitFor(`cycle ${i}: back to one NIC`, async () => (await xn.consoleRun('sh1', 'ip -o link | grep -c eth')).trim().endsWith('1'), 10_000);
    }
  }, 120_000);

  it('xl -N network-attach prints the parsed vif as Xen\'s dry run; a bad spec fails', async () => {
    const dry = await xn.xl('-N', 'network-attach', 'sh1', 'bridge=xenbr9', 'mac=00:16:3e:01:02:03', 'rate=10Mb/s@20ms');
    expect(dry.code).toBe(0);
    const json = JSON.parse(dry.stdout.replace(/^vif: /, ''));
    expect(json).toMatchObject({ mac: '00:16:3e:01:02:03', bridge: 'xenbr9', rate_bytes_per_interval: 25000, rate_interval_usecs: 20000 });
    expect(dry.stdout.startsWith('vif: {')).toBe(true);
    const bad = await xn.xl('-N', 'network-attach', 'sh1', 'mac=01:00:5e:00:00:01');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('multicast');
    const bad2 = await xn.xl('network-attach', 'sh1', 'rate=fast');
    expect(bad2.code).not.toBe(0);
    expect(bad2.stderr).toContain('rate');
  });

  it('vif-nat says plainly that it is not supported yet', async () => {
    const r = await xn.xl('network-attach', 'sh1', `bridge=${br}`, 'script=vif-nat', 'vifname=xnpvn-nat');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('vif-nat is not supported yet');
    expect((await xn.xlOk('network-list', 'sh1')).trim().split('\n')).toHaveLength(2);
  });

  it('vif-route: no bridge; dom0 routes to the guest\'s ip= and they reach each other', async () => {
    const RT_IP = '198.18.6.10';
    await create('routed', 'console=hvc0', `script=vif-route,ip=${RT_IP},vifname=xnpvn-rt`);
    await xn.waitForShell('routed');
    // The hotplug script: a host route to the guest's address through its vif, no bridge port.
    expect(execFileSync('ip', ['route', 'show', `${RT_IP}/32`], { encoding: 'utf8' })).toContain('dev xnpvn-rt');
    expect(existsSync('/sys/class/net/xnpvn-rt/brport')).toBe(false);
    expect(readFileSync('/proc/sys/net/ipv4/conf/xnpvn-rt/proxy_arp', 'utf8').trim()).toBe('1');
    // dom0 (this host's own stack) pings the guest; the guest answers on-link (its default route
    // is the vif, set up by its kernel for a routed vif).
    expect(spawnSync('ping', ['-c', '3', '-i', '0.2', '-W', '2', RT_IP]).status).toBe(0);
    expect(await xn.consoleRun('routed', 'ip route show default')).toMatch(/default dev eth0/);
    await xn.xlOk('destroy', 'routed');
    // offline: the route goes with the vif
    expect(execFileSync('ip', ['route', 'show', `${RT_IP}/32`], { encoding: 'utf8' }).trim()).toBe('');
    expect(existsSync('/sys/class/net/xnpvn-rt')).toBe(false);
  });

  it('the vif\'s rate= is delivered within 5% (10Mb/s@20ms)', async () => {
    const server = lan.spawn(['iperf3', '-s', '-1']);
    try {
      await sleep(300);
      ids.rl = await create('rl', 'init=/usr/bin/iperf3 -c 198.18.0.1 -t 8', `bridge=${br},ip=198.18.1.30/15,rate=10Mb/s@20ms,vifname=xnpvn-rl`);
      const vif = 'xnpvn-rl';
      // Wait for the stream to run, skip the first second (the bucket's initial burst).
      await xn.waitFor('the guest to transmit', () => existsSync(`/sys/class/net/${vif}`) && linkStats(vif).rxBytes > 200_000, 15_000);
      await sleep(1000);
      const a = linkStats(vif).rxBytes;
      const t0 = performance.now();
      await sleep(4000);
      const b = linkStats(vif).rxBytes;
      const rate = ((b - a) * 1000) / (performance.now() - t0);
      const want = 10_000_000 / 8;
      expect(Math.abs(rate - want) / want, `measured ${Math.round(rate)} B/s, configured ${want}`).toBeLessThan(0.05);
      expect((await stats('rl')).tx_rate_limited).toBeGreaterThan(0);
    } finally {
      server.kill();
    }
  });

  it('with offloads off (xen_netfront.offload=0) every frame on the rings fits the MTU, and TCP still flows', async () => {
    const server = iperfServer();
    try {
      await sleep(300);
      // on_poweroff=preserve: the domain (and its vif's counters) stay after iperf3 ends.
      await create('nooff', 'xen_netfront.offload=0 init=/usr/bin/iperf3 -c 198.18.0.1 -t 2', `bridge=${br},ip=198.18.1.40/15,vifname=xnpvn-noo`, 'on_poweroff = "preserve"\n');
      const received = (await server.report(20_000)).end.sum_received.bytes as number;
      expect(received).toBeGreaterThan(10_000_000);
      expect(xn.consoleLog('nooff')).toContain('offloads off');
      const st = await stats('nooff');
      expect(st.tx_packets).toBeGreaterThan(1000);
      expect(st.tx_gso).toBe(0);
      expect(st.tx_csum_offload).toBe(0);
      expect(st.tx_bytes! / st.tx_packets!).toBeLessThanOrEqual(1514);
    } finally {
      server.kill();
      await xn.xl('destroy', 'nooff');
    }
  });

  it('a guest flooding 64-byte UDP datagrams gets tens of thousands a second onto the LAN', async () => {
    // TX completions are collected in batches (netfront asks for an event at half its requests
    // in flight): asked for at the next completion, this flood once went out a few frames per
    // wake-up, 18,000 datagrams a second here (3,000 in the driver comparison) instead of
    // ~70,000.
    const server = iperfServer();
    try {
      await sleep(300);
      await create('flood', 'init=/usr/bin/iperf3 -c 198.18.0.1 -u -l 64 -b 0 -t 2', `bridge=${br},ip=198.18.1.50/15,vifname=xnpvn-fld`, 'on_poweroff = "preserve"\n');
      const sum = (await server.report(30_000)).end.sum as { packets: number; lost_packets: number; seconds: number };
      const rate = (sum.packets - sum.lost_packets) / sum.seconds;
      expect(rate, `${Math.round(rate)} datagrams/s received`).toBeGreaterThan(10_000);
      // The mechanism, steadier than a rate on a shared machine: events both ways per packet
      // (0.01 batched; 0.13 when completions were asked for one at a time, at a quarter of
      // the rate).
      const st = await stats('flood');
      expect(st.tx_packets).toBeGreaterThan(20_000);
      expect(st.notify_per_packet).toBeLessThanOrEqual(0.05);
    } finally {
      server.kill();
      await xn.xl('destroy', 'flood');
    }
  });

  it('a bridge that does not exist fails the create as vif-bridge fails, and nothing is left', async () => {
    const od = 'xnbr-pvod';
    const cfg = xn.config('od', `name = "od"\ntype = "pv"\nmemory = 128\nvcpus = 1\nextra = "init=/bin/sleep 600"\nvif = [ 'bridge=${od},vifname=xnpvn-od' ]\n`);
    const r = await xn.xl('create', cfg);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`Could not find bridge device ${od}`);
    expect(r.stderr).toMatch(/unable to add vif devices/);
    expect(existsSync(`/sys/class/net/${od}`)).toBe(false);
    expect(existsSync('/sys/class/net/xnpvn-od')).toBe(false);
    expect((await xn.list()).some((d) => d.name === 'od')).toBe(false);
  });

  it('destroying the guests removes their vifs; nothing of ours is left after the LAN goes', async () => {
    for (const name of ['web', 'sh1', 'rl']) await xn.xl('destroy', name);
    await xn.waitFor('the vifs to go', () => !existsSync(`/sys/class/net/vif${ids.sh1}.0`) && !existsSync('/sys/class/net/xnpvn-web') && !existsSync('/sys/class/net/xnpvn-rl'), 10_000);
    lan.down();
    expect(leftovers('pvn')).toEqual([]);
    expect(lan.dhcpRunning()).toBe(false);
  });
});
