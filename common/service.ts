// `xenode start|stop|status`: run the hypervisor (which starts dom0) as a background service.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hypervisorPidFile, logDir, toolstackSocket, xenstoredSocket } from './paths.js';
import { rpcCall } from './toolstack-client.js';

const here = dirname(fileURLToPath(import.meta.url));

export function hypervisorPid(): number | null {
  try {
    const pid = Number(readFileSync(hypervisorPidFile(), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return null;
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

export async function toolstackUp(): Promise<boolean> {
  try {
    await rpcCall(toolstackSocket(), 'ping', {}, 2000);
    return true;
  } catch {
    return false;
  }
}

export async function start(): Promise<string> {
  if (await toolstackUp()) return `xenode is already running (hypervisor pid ${hypervisorPid() ?? '?'})`;
  mkdirSync(logDir(), { recursive: true });
  const logPath = join(logDir(), 'xenode.log');
  const log = openSync(logPath, 'a');
  // --expose-gc: the hypervisor collects soon after a domain goes (common/collect-soon.ts).
  const child = spawn(process.execPath, ['--expose-gc', join(here, '..', 'hypervisor', 'main.js')], {
    detached: true,
    stdio: ['ignore', log, log],
    env: process.env,
  });
  closeSync(log);
  child.unref();
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (await toolstackUp()) return `xenode started: hypervisor pid ${child.pid}, xenstored at ${xenstoredSocket()}, logs in ${logDir()}`;
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const tail = existsSync(logPath) ? readFileSync(logPath, 'utf8').split('\n').slice(-15).join('\n') : '';
  throw new Error(`xenode did not start; the end of ${logPath}:\n${tail}`);
}

export async function stop(): Promise<string> {
  const pid = hypervisorPid();
  if (!pid) return 'xenode is not running';
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return 'xenode stopped';
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  process.kill(pid, 'SIGKILL');
  return 'xenode did not stop in time: killed';
}

export async function status(): Promise<{ running: boolean; text: string }> {
  const pid = hypervisorPid();
  const up = await toolstackUp();
  if (!pid && !up) return { running: false, text: 'xenode is not running' };
  let text = `hypervisor: ${pid ? `running (pid ${pid})` : 'not running'}\n`;
  text += `dom0 toolstack: ${up ? `up (${toolstackSocket()})` : 'not answering'}\n`;
  text += `xenstored: ${xenstoredSocket()}\nlogs: ${logDir()}\n`;
  if (up) {
    const list = await rpcCall<{ domid: number }[]>(toolstackSocket(), 'list');
    text += `domains: ${list.length} (including Domain-0)\n`;
  }
  return { running: up, text };
}
