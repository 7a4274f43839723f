// The stub domain's display and VNC server in process, against a machine driven at register
// level: a viewer sees the text screen, then a Bochs VBE mode the guest switches to arrives as
// DesktopSize plus the framebuffer's pixels (32 and 16 bpp), and keys typed by the viewer come
// out of the i8042 as the scan codes a PC keyboard sends.
import { afterEach, describe, expect, it } from 'vitest';
import { makeMachine, MiB } from './helpers.js';
import { VgaState } from '../../stubdom/devices/vga/vga-shared.js';
import { InputQueue } from '../../stubdom/devices/i8042/input-queue.js';
import { DisplaySurface } from '../../stubdom/display/display-surface.js';
import { VgaFont } from '../../stubdom/display/psf-font.js';
import { VncServer } from '../../stubdom/vnc/vnc-server.js';
import { RfbClient } from '../helpers/rfb-client.js';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

async function setup() {
  const state = VgaState.create(16 * MiB);
  const t = makeMachine({ vga: state, ramBytes: 64 * MiB });
  const input = new InputQueue();
  const server = await VncServer.open(
    { listen: '127.0.0.1', display: 70, findUnused: true, password: null, name: 'unit' },
    new DisplaySurface(state, new VgaFont()),
    { key: (k, d) => void input.key(k, d), pointer: (x, y, b) => void input.pointer(x, y, b) },
    () => {},
  );
  closers.push(() => server.close());
  const client = await RfbClient.connect(server.port);
  closers.push(() => client.close());
  return { ...t, state, input, server, client };
}

const dispi = (cpu: { outw(p: number, v: number): void }, index: number, value: number) => {
  cpu.outw(0x1ce, index);
  cpu.outw(0x1cf, value);
};

describe('VNC display of the standard VGA', () => {
  it('shows text the guest writes, then a VBE mode as DesktopSize and its pixels', async () => {
    const { cpu, client } = await setup();
    expect([client.width, client.height]).toEqual([720, 400]);
    const msg = 'Hello from 0xB8000';
    for (let i = 0; i < msg.length; i++) cpu.writew(0xb8000 + 160 * 3 + i * 2, 0x0700 | msg.charCodeAt(i));
    expect(await client.waitForText(/^Hello from 0xB8000$/m)).toBeTruthy();

    dispi(cpu, 1, 1024);
    dispi(cpu, 2, 768);
    dispi(cpu, 3, 32);
    dispi(cpu, 4, 0x41);
    const lfb = (cpu.bar(2, 0, 0) & ~0xf) >>> 0;
    cpu.writel(lfb + (10 * 1024 + 20) * 4, 0x00ff8040);
    client.request(true);
    const u = await client.update();
    expect(u.encodings[0]).toBe(-223);
    expect([client.width, client.height]).toEqual([1024, 768]);
    if (u.rects === 1) {
      client.request(false);
      await client.update();
    }
    expect(client.fb[10 * 1024 + 20]).toBe(0xff8040);

    // 16 bpp (5-6-5): pure green at a new place.
    dispi(cpu, 4, 0);
    dispi(cpu, 3, 16);
    dispi(cpu, 4, 0x41 | 0x80);
    cpu.writew(lfb + (5 * 1024 + 7) * 2, 0x07e0);
    client.request(true);
    await client.update();
    client.request(false);
    await client.update();
    expect(client.fb[5 * 1024 + 7]).toBe(0x00ff00);
  });

  it('sends a scrolled text screen as CopyRect plus the new line, pixel-exact', async () => {
    const { cpu, client, server } = await setup();
    const paint = (first: number) => {
      for (let r = 0; r < 25; r++) {
        const line = `line ${first + r} of the log`.padEnd(80);
        for (let c = 0; c < 80; c++) cpu.writew(0xb8000 + (r * 80 + c) * 2, 0x0700 | line.charCodeAt(c));
      }
      const pos = 24 * 80 + 40; // cursor on the last line, past its text
      cpu.outw(0x3d4, 0x0e | (pos & 0xff00));
      cpu.outw(0x3d4, 0x0f | ((pos & 0xff) << 8));
    };
    paint(0);
    await client.waitForText(/^line 24 of the log$/m);
    paint(1);
    let text = '';
    const deadline = Date.now() + 5000;
    let copies = 0;
    while (Date.now() < deadline && !/^line 25 of the log/m.test(text)) {
      client.request(true);
      copies += (await client.update()).encodings.filter((e) => e === 1).length;
      text = (await import('../helpers/rfb-client.js')).screenText(client.fb, client.width, client.height);
    }
    expect(copies).toBe(1);
    expect(text.split('\n')[0]).toBe('line 1 of the log');
    // A fresh viewer's full screen is the same, pixel for pixel.
    const fresh = await RfbClient.connect(server.port);
    closers.push(() => fresh.close());
    fresh.request(false);
    await fresh.update();
    expect(Buffer.from(fresh.fb.buffer).equals(Buffer.from(client.fb.buffer))).toBe(true);
  });

  it('turns typed keysyms into PC scan codes at the i8042 (Shift added for capitals)', async () => {
    const { cpu, client, input, m } = await setup();
    client.type('aA\n');
    await new Promise((r) => setTimeout(r, 200));
    input.drain(m.i8042!);
    const got: number[] = [];
    for (let i = 0; i < 64 && cpu.inb(0x64) & 1; i++) got.push(cpu.inb(0x60));
    // a down/up; for 'A' Shift goes down around the press only (the guest sees a capital);
    // Return down/up. Set 1, as translated by the controller.
    expect(got).toEqual([0x1e, 0x9e, 0x2a, 0x1e, 0xaa, 0x9e, 0x1c, 0x9c]);
  });
});
