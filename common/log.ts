// One-line logs with a component prefix, as Xen's daemons write them.
export function logger(component: string) {
  const line = (level: string, msg: string) => {
    const ts = new Date().toISOString();
    process.stderr.write(`${ts} ${component} ${level}: ${msg}\n`);
  };
  return {
    info: (msg: string) => line('info', msg),
    warn: (msg: string) => line('warn', msg),
    error: (msg: string) => line('error', msg),
  };
}
export type Logger = ReturnType<typeof logger>;
