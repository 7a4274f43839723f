// Magic SysRq from dom0 (`xl sysrq DOM KEY`): the toolstack writes the key to control/sysrq,
// the kernel clears it and acts, as Linux's drivers/xen/manage.c sysrq_handler and
// drivers/tty/sysrq.c do, with their console lines. The keys a Xen administrator uses:
//   b reboot now, o power off now, c crash (on_crash), s emergency sync, u emergency remount
//   read-only (the guest's root writes back), e SIGTERM / i SIGKILL every process but init,
//   h help. Unknown keys print the help, as Linux does.

export interface SysrqActions {
  reboot(): void;
  poweroff(): void;
  crash(): void;
  sync(): Promise<void>;
  /** Send `signal` to every userland process but init. */
  signalAll(signal: 'SIGTERM' | 'SIGKILL'): void;
}

const HELP = 'sysrq: HELP : crash(c) terminate-all-tasks(e) kill-all-tasks(i) power-off(o) reboot(b) sync(s) unmount(u) show-help(h)';

export async function handleSysrq(key: string, a: SysrqActions, log: (m: string) => void): Promise<void> {
  switch (key) {
    case 'b':
      log('sysrq: Resetting');
      return a.reboot();
    case 'o':
      log('sysrq: Power Off');
      return a.poweroff();
    case 'c':
      log('sysrq: Trigger a crash');
      return a.crash();
    case 's':
      log('sysrq: Emergency Sync');
      await a.sync();
      log('Emergency Sync complete');
      return;
    case 'u':
      log('sysrq: Emergency Remount R/O');
      await a.sync();
      log('Emergency Remount complete');
      return;
    case 'e':
      log('sysrq: Terminate All Tasks');
      return a.signalAll('SIGTERM');
    case 'i':
      log('sysrq: Kill All Tasks');
      return a.signalAll('SIGKILL');
    default:
      log(HELP);
  }
}
