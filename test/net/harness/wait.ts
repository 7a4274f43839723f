// Waiting in tests: for a while, or for a condition (bounded, with what was awaited in the error).
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 5000, logs?: string[]): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}${logs ? `\n${logs.join('\n')}` : ''}`);
}
