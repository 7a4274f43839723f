// A guest's VGA display in the browser: noVNC speaks RFB over a WebSocket; this joins that
// WebSocket to the TCP port of the display's VNC server, found where libxl puts it
// (/local/domain/N/console/vnc-port and vnc-listen). Bytes only, both ways: RFB itself is
// between noVNC and the server. Bounded: when the browser falls behind, reading from the
// server pauses (RFB is request/response, so the server simply waits); a client that sends
// faster than the server takes is cut off.
import { connect, type Socket } from 'node:net';
import type { WebSocket } from 'ws';

const WS_HIGH_WATER = 1 << 20;
const TCP_LIMIT = 1 << 20;

/** vnc-listen is where the server listens; a wildcard is reached on loopback. */
export function vncAddress(listen: string, port: string): { host: string; port: number } | null {
  const p = Number(port.trim());
  if (!/^\d{1,5}$/.test(port.trim()) || p < 1 || p > 65535) return null;
  let host = listen.trim() || '127.0.0.1';
  if (host === '0.0.0.0' || host === '::' || host === '*') host = '127.0.0.1';
  return { host, port: p };
}

export function bridgeVnc(ws: WebSocket, addr: { host: string; port: number }, onClose: () => void): Socket {
  const tcp = connect(addr.port, addr.host);
  let paused = false;
  let poll: NodeJS.Timeout | null = null;
  let ended = false;
  const end = (code: number, why: string) => {
    if (ended) return;
    ended = true;
    if (poll) clearInterval(poll);
    tcp.destroy();
    if (ws.readyState === ws.OPEN) ws.close(code, why.slice(0, 120));
    onClose();
  };
  tcp.on('data', (b: Buffer) => {
    ws.send(b, { binary: true });
    if (!paused && ws.bufferedAmount > WS_HIGH_WATER) {
      paused = true;
      tcp.pause();
      poll = setInterval(() => {
        if (ws.bufferedAmount > WS_HIGH_WATER / 2) return;
        clearInterval(poll!);
        poll = null;
        paused = false;
        tcp.resume();
      }, 20);
    }
  });
  tcp.on('error', (e) => end(1011, `VNC server ${addr.host}:${addr.port}: ${e.message}`));
  tcp.on('close', () => end(1000, 'VNC server closed the connection'));
  ws.on('message', (data: Buffer) => {
    if (tcp.writableLength > TCP_LIMIT) return end(1008, 'client sends faster than the VNC server reads');
    tcp.write(data);
  });
  ws.on('close', () => end(1000, 'closed'));
  ws.on('error', () => end(1011, 'error'));
  return tcp;
}
