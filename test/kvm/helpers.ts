// The skip rule every KVM suite shares; the tiny guests live in hypervisor/kvm/tiny-guest.ts.
import { existsSync } from 'node:fs';
import { kvmAvailable, kvmHostInfo } from '../../hypervisor/kvm/kvm.js';

/** Why KVM suites skip here, or '' when they run. Under CI=true with /dev/kvm present they
 * must run, so an unusable /dev/kvm is then a failure (reported by `kvmMustRunButCannot`). */
export function kvmSkipReason(): string {
  const a = kvmAvailable();
  if (a.ok) return '';
  return a.reason;
}

export function kvmMustRunButCannot(): string {
  if (process.env.CI === 'true' && existsSync('/dev/kvm') && !kvmAvailable().ok) return kvmAvailable().reason;
  return '';
}

/** Does this host run an unmodified guest's kernel mode natively? (PVM emulates it.) */
export const guestKernelNative = (): boolean => kvmHostInfo().guestKernelNative;

export { Asm, TINY_ENTRY, tinyBzImage, userModeSetup } from '../../hypervisor/kvm/tiny-guest.js';
