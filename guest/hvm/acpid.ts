// What a distribution's acpid does with the ACPI button events out of the box (Debian's acpid
// package: /etc/acpi/events/powerbtn-acpi-support runs /etc/acpi/powerbtn-acpi-support.sh,
// which, with no desktop session to ask, runs `shutdown -h now`). The power button is an
// orderly poweroff, as `poweroff` typed in the guest; the sleep button has no rule in that
// default set (and this machine cannot suspend), so it is logged and nothing else happens.
import type { AcpiButtonEvent } from './drivers/acpi-button.js';

export function acpid(poweroff: (why: string) => void, printk: (m: string) => void): (e: AcpiButtonEvent) => void {
  return (e) => {
    printk(`acpid: received event "${e}"`);
    if (e.startsWith('button/power')) {
      printk('acpid: executing action "/etc/acpi/powerbtn-acpi-support.sh": shutdown -h now');
      poweroff('acpid: power button pressed: the system is going down for poweroff NOW');
    } else {
      printk('acpid: no rule for the sleep button (the default rules handle only the power button); the guest keeps running');
    }
  };
}
