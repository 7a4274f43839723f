// The workload runner every configuration uses, guests and native alike: one python3 script
// (Debian's /usr/bin/python3, which every guest sees in its read-only /usr) that runs one
// bounded workload (iperf3, fio, or its own UDP request/response client) and prints a single
// compact line `CMPRESULT {json}`. Guests run it from their console (it lives in the
// instance's /boot, which every guest sees), the native baseline runs it in a namespace or on
// the host. One short line matters: an HVM guest's console is an emulated UART, where every
// byte costs an exit.
//
//   tcp     SERVER SECONDS [R]      iperf3 TCP, one stream; R = the server sends (-R)
//   udp     SERVER SECONDS          iperf3 UDP, 64-byte datagrams, unlimited rate
//   rr      SERVER COUNT SECONDS    64-byte UDP request/response to SERVER:7, one outstanding
//   fio     FILE SECONDS RW BS QD   fio, O_DIRECT, libaio, time based, no ramp
//
// Every mode is bounded in time (iperf3 -t, fio --runtime, rr's deadline) and by a hard
// subprocess timeout.

export const WORKLOAD_SCRIPT = String.raw`import json, socket, subprocess, sys, time

def out(d):
    sys.stdout.write("CMPRESULT " + json.dumps(d, separators=(",", ":")) + "\n")
    sys.stdout.flush()

def run(argv, limit):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        out({"error": "timeout: " + " ".join(argv[:3])})
        sys.exit(1)
    if p.returncode != 0:
        out({"error": (p.stderr or p.stdout)[-300:]})
        sys.exit(1)
    return p.stdout

mode = sys.argv[1]
if mode == "tcp":
    server, secs = sys.argv[2], int(sys.argv[3])
    rev = len(sys.argv) > 4 and sys.argv[4] == "R"
    j = json.loads(run(["iperf3", "-c", server, "-t", str(secs), "-J", "--connect-timeout", "3000"] + (["-R"] if rev else []), secs + 30))
    r = j["end"]["sum_received"]
    out({"bps": r["bits_per_second"], "bytes": r["bytes"], "seconds": r["seconds"]})
elif mode == "udp":
    server, secs = sys.argv[2], int(sys.argv[3])
    j = json.loads(run(["iperf3", "-c", server, "-u", "-l", "64", "-b", "0", "-t", str(secs), "-J", "--connect-timeout", "3000"], secs + 30))
    s = j["end"].get("sum_received") or j["end"]["sum"]
    got = s["packets"] - s.get("lost_packets", 0)
    out({"pps": got / s["seconds"], "packets": got, "sent": s["packets"], "bytes": got * 64, "seconds": s["seconds"]})
elif mode == "rr":
    server, count, secs = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    msg = b"x" * 64
    for _ in range(20):
        s.sendto(msg, (server, 7))
        try:
            s.recvfrom(2048)
        except socket.timeout:
            pass
    rtts, lost = [], 0
    t0 = time.perf_counter()
    deadline = t0 + secs
    while len(rtts) < count and time.perf_counter() < deadline:
        t = time.perf_counter_ns()
        s.sendto(msg, (server, 7))
        try:
            s.recvfrom(2048)
        except socket.timeout:
            lost += 1
            continue
        rtts.append((time.perf_counter_ns() - t) / 1000)
    el = time.perf_counter() - t0
    if not rtts:
        out({"error": "no answers"})
        sys.exit(1)
    rtts.sort()
    n = len(rtts)
    out({"p50": rtts[n // 2], "p99": rtts[min(n - 1, int(n * 0.99))], "n": n, "lost": lost, "tps": n / el, "packets": 2 * n, "bytes": 128 * n, "seconds": el})
elif mode == "fio":
    f, secs, rw, bs, qd = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
    j = json.loads(run(["fio", "--name=j", "--filename=" + f, "--direct=1", "--ioengine=libaio", "--time_based", "--runtime=" + str(secs),
                        "--rw=" + rw, "--bs=" + bs, "--iodepth=" + qd, "--output-format=json"], secs + 60))
    job = j["jobs"][0]
    r, w = job["read"], job["write"]
    ios = r["total_ios"] + w["total_ios"]
    byt = r["io_bytes"] + w["io_bytes"]
    el = max(job["job_runtime"], 1) / 1000.0
    out({"iops": ios / el, "mibps": byt / el / 1048576, "ios": ios, "bytes": byt, "seconds": el,
         "lat_us": (r["clat_ns"]["mean"] if r["total_ios"] else w["clat_ns"]["mean"]) / 1000})
else:
    out({"error": "unknown mode " + mode})
    sys.exit(2)
`;

/** The UDP echo server the LAN host runs on port 7 (for rr). */
export const ECHO_SERVER = `import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", 7))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(d, a)`;

/** The result line, or an error naming what the workload printed. */
export function parseResult(text: string, what: string): Record<string, number> {
  const m = /CMPRESULT (\{[^\n]*\})/.exec(text.replace(/\r/g, ''));
  if (!m) throw new Error(`${what}: no result line in: ${text.slice(-400)}`);
  const r = JSON.parse(m[1]!) as Record<string, number | string>;
  if (typeof r.error === 'string') throw new Error(`${what}: ${r.error}`);
  return r as Record<string, number>;
}
