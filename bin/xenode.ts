#!/usr/bin/env node
// The `xenode` command: start, stop and inspect the hypervisor and dom0 services.
import { start, stop, status } from '../common/service.js';
import { lanCommand, uplinkCommand } from '../net/cli.js';
import { mkimageCommand } from '../common/mkimage.js';
import { webCommand } from '../dom0/web/web-command.js';

const USAGE = `usage: xenode <command>
  start     start the hypervisor and dom0 (xenstored, consoles, toolstack) in the background
  stop      destroy all guests and stop the services
  status    say whether the services are running
  lan       the test LAN host: lan up|down|status, lan exec -- CMD (see xenode lan help)
  uplink    bridge guests onto a real LAN through this machine's interface (prints a plan)
  mkimage   make a guest disk image with an ext4 filesystem from a directory: mkimage DIR IMAGE SIZE
  web       the browser console (live domains, consoles, displays, charts) on 127.0.0.1: web [--port N]
`;

async function main(argv: string[]): Promise<number> {
  switch (argv[0]) {
    case 'start':
      console.log(await start());
      return 0;
    case 'stop':
      console.log(await stop());
      return 0;
    case 'status': {
      const s = await status();
      process.stdout.write(s.text.endsWith('\n') ? s.text : s.text + '\n');
      return s.running ? 0 : 3;
    }
    case 'lan':
      return lanCommand(argv.slice(1));
    case 'uplink':
      return uplinkCommand(argv.slice(1));
    case 'mkimage':
      return mkimageCommand(argv.slice(1));
    case 'web':
      return webCommand(argv.slice(1));
    default:
      process.stderr.write(USAGE);
      return argv[0] === 'help' || argv[0] === '--help' ? 0 : 1;
  }
}

main(process.argv.slice(2)).then(
  (c) => process.exit(c),
  (e) => {
    process.stderr.write(`xenode: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
