// grant_table_op for the caller itself: its grant table.
import { guest, fault, type HypercallContext, type HypercallTable } from './context.js';

export function gnttabHypercalls(hv: HypercallContext): HypercallTable {
  return {
    'gnttab.setup_table': guest((c) => {
      if (c.grantFd < 0) throw fault('ENOSYS', 'this domain has no grant table');
      return { result: { frames: c.grantFrames }, fds: [c.grantFd] };
    }),
    'gnttab.query_size': guest((c) => ({ result: { nr_frames: c.grantFrames, max_nr_frames: c.grantFrames } })),
  };
}
