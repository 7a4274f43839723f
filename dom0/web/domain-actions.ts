// The page's buttons: shutdown, reboot, pause, unpause, destroy, each the toolstack request
// `xl` makes for the same command. The domain is named by id; one that is gone (or never was)
// is a 404 naming it, a bad action or id a 400: nothing else is touched.
import { ToolstackError } from '../toolstack/rpc.js';
import type { ToolstackCall } from '../toolstack/domain-counters.js';

export const ACTIONS = ['shutdown', 'reboot', 'pause', 'unpause', 'destroy'] as const;
export type Action = (typeof ACTIONS)[number];

export class ActionError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export async function runAction(call: ToolstackCall, domArg: string, action: string): Promise<void> {
  if (!(ACTIONS as readonly string[]).includes(action)) throw new ActionError(400, `unknown action ${JSON.stringify(action)} (one of ${ACTIONS.join(', ')})`);
  if (!/^\d{1,5}$/.test(domArg)) throw new ActionError(400, `domain id must be a number, got ${JSON.stringify(domArg)}`);
  const dom = String(Number(domArg));
  if (dom === '0') throw new ActionError(400, `${action} on Domain-0 is not done from the web console`);
  try {
    // The id must still be there: resolving a name could land on a different domain.
    const list = await call<{ domid: number }[]>('list');
    if (!list.some((d) => String(d.domid) === dom)) throw new ToolstackError('ESRCH', `domain ${dom} does not exist (any more)`);
    if (action === 'shutdown' || action === 'reboot') await call('shutdown', { dom, reboot: action === 'reboot' });
    else await call(action, { dom });
  } catch (e) {
    const code = (e as ToolstackError).code;
    if (code === 'ESRCH' || code === 'ENOENT') throw new ActionError(404, (e as Error).message);
    throw new ActionError(code === 'EINVAL' ? 400 : 500, `${action} domain ${dom}: ${(e as Error).message}`);
  }
}
