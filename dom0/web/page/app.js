// The xenode web console's page: the live domain list (/ws/live), the selected domain's console
// (xterm.js over /ws/console/<id>), its display (noVNC over /ws/vnc/<id>), its buttons, devices
// and throughput charts (uPlot), and the driver comparison's results (/api/bench).
const token = document.querySelector('meta[name="xenode-token"]').content;
const probe = new URLSearchParams(location.search).has('probe');
const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
const q = (s) => document.querySelector(s);
const HISTORY = 600;
const ACK_EVERY = 32 * 1024;

let domains = new Map();
let history = {};
let selected = null;
let term = null;
let fit = null;
let consoleWs = null;
let rfb = null;
let charts = null;

const bytes = (v) => {
  const u = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (v >= 1024 && i < u.length - 1) (v /= 1024), i++;
  return `${v.toFixed(i && v < 10 ? 1 : 0)} ${u[i]}`;
};
const rate = (v) => `${bytes(v)}/s`;
const uptime = (s) => {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return `${d ? `${d}d ` : ''}${h}h ${String(m).padStart(2, '0')}m`;
};
const el = (tag, attrs = {}, text) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};

// ---- the live channel ----
function connectLive() {
  const ws = new WebSocket(`${wsBase}/ws/live?token=${encodeURIComponent(token)}`);
  ws.onopen = () => ((q('#link').textContent = 'live'), (q('#link').className = 'link up'));
  ws.onclose = () => {
    q('#link').textContent = 'disconnected';
    q('#link').className = 'link down';
    setTimeout(connectLive, 2000);
  };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === 'history') history = msg.history;
    else if (msg.type === 'sample') onSample(msg.sample);
    else if (msg.type === 'error') showError(msg.message);
  };
}

function showError(m) {
  q('#error').hidden = !m;
  q('#error').textContent = m ? `dom0: ${m}` : '';
}

function onSample(s) {
  showError(null);
  const h = s.host;
  const host = q('#host');
  host.replaceChildren();
  for (const [k, v] of [
    ['host', h.hostname],
    ['CPUs', h.nrCpus],
    ['memory', `${h.freeMemoryMiB} of ${h.totalMemoryMiB} MiB free`],
    ['Xen', `${h.xenMajor}.${h.xenMinor}${h.xenExtra}`],
    ['xenode', h.xenodeVersion],
    ['up', uptime(h.uptimeSec)],
  ]) host.append(el('dt', {}, k), el('dd', { id: `host-${k}` }, String(v)));
  domains = new Map(s.domains.map((d) => [d.domid, d]));
  for (const d of s.domains) {
    const hh = (history[d.domid] ??= { t: [], netTx: [], netRx: [], diskRd: [], diskWr: [], cpu: [] });
    hh.t.push(s.at / 1000);
    hh.netTx.push(d.netTxBps), hh.netRx.push(d.netRxBps), hh.diskRd.push(d.diskRdBps), hh.diskWr.push(d.diskWrBps), hh.cpu.push(d.cpuPct);
    if (hh.t.length > HISTORY) for (const col of Object.values(hh)) col.shift();
  }
  for (const id of Object.keys(history)) if (!domains.has(Number(id))) delete history[id];
  renderTable();
  if (selected !== null) {
    const d = domains.get(selected);
    if (!d) return deselect(`domain ${selected} is gone`);
    renderDetail(d);
  }
}

function renderTable() {
  const body = q('#domains tbody');
  const rows = [];
  for (const d of domains.values()) {
    const tr = el('tr', { 'data-domid': d.domid, 'data-name': d.name });
    if (d.domid === selected) tr.className = 'sel';
    const cells = [d.name, d.domid, d.state, d.onlineVcpus, Math.floor(d.memKiB / 1024), d.cpuPct.toFixed(1), rate(d.netTxBps), rate(d.netRxBps), rate(d.diskRdBps), rate(d.diskWrBps)];
    const cls = ['name', 'id', 'state', 'vcpus', 'mem', 'cpu', 'nettx', 'netrx', 'diskrd', 'diskwr'];
    cells.forEach((c, i) => tr.append(el('td', { class: cls[i] }, String(c))));
    tr.onclick = () => select(d.domid);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

// ---- one domain ----
function select(domid) {
  if (selected === domid) return;
  deselect();
  selected = domid;
  const d = domains.get(domid);
  q('#detail').hidden = false;
  q('#dname').textContent = `${d.name} (${d.domid})`;
  q('#action-msg').textContent = '';
  renderTable();
  renderDetail(d);
  makeCharts(d);
  // Domain-0 has no console here and is not paused or destroyed from a web page.
  for (const b of document.querySelectorAll('button[data-action], .tabs button')) b.hidden = d.domid === 0;
  showTab(d.domid !== 0 ? 'console' : null);
  if (d.domid !== 0) openConsole(domid);
}

function deselect(why) {
  if (consoleWs) consoleWs.close(), (consoleWs = null);
  if (rfb) rfb.disconnect(), (rfb = null);
  if (charts) charts.forEach((c) => c.destroy()), (charts = null);
  selected = null;
  q('#detail').hidden = true;
  if (why) q('#action-msg').textContent = why;
}

function renderDetail(d) {
  q('#btn-pause').hidden = d.paused || d.domid === 0;
  q('#btn-unpause').hidden = !d.paused || d.domid === 0;
  // The Display tab says whether there is a display to show.
  const tab = q('#tab-display');
  tab.textContent = d.vnc ? 'Display (VNC)' : 'Display';
  if (d.vnc) tab.dataset.vnc = d.vnc;
  else delete tab.dataset.vnc;
  const body = q('#devices tbody');
  const rows = [];
  for (const v of d.vifs) {
    rows.push(devRow(`vif${d.domid}.${v.devid}`, [['TX bytes', v.txBytes], ['TX pkts', v.txPackets], ['TX drops', v.txDrops], ['RX bytes', v.rxBytes], ['RX pkts', v.rxPackets], ['RX drops', v.rxDrops]]));
  }
  for (const v of d.vbds) {
    rows.push(devRow(`vbd ${v.devid}`, [['OO', v.ooReq], ['RD', v.rdReq], ['WR', v.wrReq], ['RSECT', v.rdSect], ['WSECT', v.wrSect], ['errors', v.errors]]));
  }
  if (!rows.length) rows.push(devRow('(no vifs or vbds)', []));
  body.replaceChildren(...rows);
  if (charts) {
    const h = history[d.domid];
    if (h) charts[0].setData([h.t, h.netTx, h.netRx]), charts[1].setData([h.t, h.diskRd, h.diskWr]);
  }
}

function devRow(name, kv) {
  const tr = el('tr');
  tr.append(el('td', {}, name));
  for (const [k, v] of kv) tr.append(el('td', {}, `${k} ${v}`));
  return tr;
}

function makeCharts(d) {
  const h = history[d.domid] ?? { t: [], netTx: [], netRx: [], diskRd: [], diskWr: [] };
  const opts = (labels, colors) => ({
    width: Math.max(300, q('#chart-net').parentElement.clientWidth - 10),
    height: 180,
    series: [{}, ...labels.map((label, i) => ({ label, stroke: colors[i], width: 1.5, points: { show: false }, value: (u, v) => (v == null ? '-' : rate(v)) }))],
    axes: [{}, { values: (u, vals) => vals.map((v) => bytes(v)), size: 70 }],
  });
  charts = [
    new uPlot(opts(['TX', 'RX'], ['#2f6fd6', '#2f8f4e']), [h.t, h.netTx, h.netRx], q('#chart-net')),
    new uPlot(opts(['read', 'write'], ['#8a4fd6', '#d6802f']), [h.t, h.diskRd, h.diskWr], q('#chart-disk')),
  ];
}

function showTab(which) {
  q('#tab-console').className = which === 'console' ? 'on' : '';
  q('#tab-display').className = which === 'display' ? 'on' : '';
  q('#console-pane').hidden = which !== 'console';
  q('#display-pane').hidden = which !== 'display';
}

function openConsole(domid) {
  if (!term) {
    term = new Terminal({ convertEol: false, scrollback: 2000, fontSize: 13 });
    fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(q('#term'));
    term.onData((data) => consoleWs?.readyState === 1 && consoleWs.send(new TextEncoder().encode(data)));
    term.onResize(({ rows, cols }) => consoleWs?.readyState === 1 && consoleWs.send(JSON.stringify({ type: 'resize', rows, cols })));
    window.xenodeTerm = term;
  }
  term.reset();
  fit.fit();
  q('#console-note').textContent = '';
  const ws = new WebSocket(`${wsBase}/ws/console/${domid}?token=${encodeURIComponent(token)}`);
  ws.binaryType = 'arraybuffer';
  consoleWs = ws;
  const dec = probe ? new TextDecoder() : null;
  let received = 0;
  let acked = 0;
  if (probe) window.xenodeArrivals = [];
  ws.onopen = () => ws.send(JSON.stringify({ type: 'resize', rows: term.rows, cols: term.cols }));
  ws.onmessage = (ev) => {
    if (typeof ev.data === 'string') {
      const m = JSON.parse(ev.data);
      q('#console-note').textContent = m.type === 'dropped' ? `${m.total} bytes of output were dropped while this page was not keeping up` : m.message;
      return;
    }
    if (probe) window.xenodeArrivals.push([Date.now(), dec.decode(ev.data)]);
    // Flow control: say what has been taken in once xterm has parsed it (console-bridge.ts).
    const n = ev.data.byteLength;
    term.write(new Uint8Array(ev.data), () => {
      received += n;
      if (received - acked >= ACK_EVERY && ws.readyState === 1) ws.send(JSON.stringify({ type: 'ack', bytes: (acked = received) }));
    });
  };
  ws.onclose = (ev) => {
    if (consoleWs === ws) q('#console-note').textContent = `console closed${ev.reason ? `: ${ev.reason}` : ''}`;
  };
  term.focus();
}

async function openDisplay() {
  const d = domains.get(selected);
  if (!d) return;
  showTab('display');
  if (rfb) return;
  if (!d.vnc) {
    q('#vnc-note').textContent = 'this domain has no VGA display (no console/vnc-port in xenstore)';
    return;
  }
  const { default: RFB } = await import('/vendor/novnc/core/rfb.js');
  rfb = new RFB(q('#vnc'), `${wsBase}/ws/vnc/${d.domid}?token=${encodeURIComponent(token)}`);
  rfb.scaleViewport = true;
  window.xenodeRfb = rfb;
  q('#vnc-note').textContent = `connecting to ${d.vnc}`;
  rfb.addEventListener('connect', () => (q('#vnc-note').textContent = `connected to ${d.vnc}`));
  rfb.addEventListener('disconnect', (e) => {
    q('#vnc-note').textContent = `display disconnected${e.detail.clean ? '' : ' (error)'}`;
    rfb = null;
  });
}

async function act(action) {
  const d = domains.get(selected);
  if (!d) return;
  if (action === 'destroy' && !confirm(`Destroy ${d.name} (domain ${d.domid})? It stops at once, as if its power were cut.`)) return;
  q('#action-msg').textContent = `${action}...`;
  const r = await fetch(`/api/domains/${d.domid}/${action}`, { method: 'POST', headers: { authorization: `token ${token}` } });
  q('#action-msg').textContent = r.ok ? `${action}: done` : `${action}: ${await r.text()}`;
}

// ---- the driver comparison ----
async function loadBench() {
  const r = await fetch('/api/bench');
  if (!r.ok) return void (q('#bench-note').textContent = await r.text());
  const doc = await r.json();
  q('#bench-note').textContent = `${doc.when}, ${doc.machine}: each workload over each device model (value and its ratio to native)`;
  const box = q('#bench-charts');
  box.replaceChildren();
  for (const w of doc.workloads) {
    const cfgs = doc.configs.filter((c) => typeof doc.results[w.key]?.[c.key]?.value === 'number');
    if (!cfgs.length) continue;
    const div = el('div');
    div.append(el('h3', {}, `${w.label} (${w.unit})`));
    box.append(div);
    const xs = cfgs.map((_, i) => i);
    const ys = cfgs.map((c) => doc.results[w.key][c.key].value);
    new uPlot(
      {
        width: 360,
        height: 200,
        scales: { x: { time: false, range: [-0.5, cfgs.length - 0.5] }, y: { range: (u, min, max) => [0, max * 1.1 || 1] } },
        series: [{}, { label: w.unit, fill: '#2f6fd6', stroke: '#1d4fa6', paths: uPlot.paths.bars({ size: [0.6, 80] }), points: { show: false } }],
        axes: [{ values: (u, vals) => vals.map((v) => cfgs[v]?.label ?? ''), splits: () => xs }, { size: 60 }],
        legend: { show: false },
      },
      [xs, ys],
      div,
    );
  }
}

for (const b of document.querySelectorAll('button[data-action]')) b.onclick = () => act(b.dataset.action);
q('#tab-console').onclick = () => showTab('console');
q('#tab-display').onclick = () => openDisplay();
window.addEventListener('resize', () => fit?.fit());
connectLive();
loadBench();
