// The far end of the native ping-pong baselines (bench/lib/native-pingpong.ts), run as its own
// process: `node pingpong-child.js futex|eventfd MAX_MS`.
//   futex:   fd 3 is a memfd page; word 0 is a counter. The parent makes it odd and wakes us;
//            we make it even and wake the parent. A negative value means stop. Word 1 = ready.
//   eventfd: fd 3 is our doorbell, fd 4 the parent's; every ring of ours rings the parent's.
// MAX_MS bounds the child's life whatever the parent does.
import { native } from '../../native/index.js';

const mode = process.argv[2];
const maxMs = Number(process.argv[3] ?? 60_000);
const deadline = Date.now() + maxMs;
const n = native();

if (mode === 'futex') {
  const v = new Int32Array(n.mapShared(3, 4096));
  let last = Atomics.load(v, 0);
  Atomics.store(v, 1, 1);
  n.futexWake(v, 1, 1);
  for (;;) {
    let cur = Atomics.load(v, 0);
    while (cur === last) {
      if (n.futexWait(v, 0, last, 500) === 'timed-out' && Date.now() > deadline) process.exit(2);
      cur = Atomics.load(v, 0);
    }
    if (cur < 0) process.exit(0);
    last = cur + 1;
    Atomics.store(v, 0, last);
    n.futexWake(v, 0, 1);
  }
} else if (mode === 'eventfd') {
  const mine = 3;
  const theirs = 4;
  const w = n.watchFd(mine, () => {
    if (n.eventfdRead(mine) > 0) n.eventfdWrite(theirs, 1);
  });
  w.start(n.READABLE);
  setTimeout(() => process.exit(2), maxMs);
  process.stdout.write('ready\n');
} else {
  process.stderr.write(`pingpong-child: unknown mode ${mode}\n`);
  process.exit(1);
}
