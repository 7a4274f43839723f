#!/usr/bin/env bash
# The README's first command (as root): install everything, then run the embedded default:
#   1. a quick driver comparison (native vs PV vs PV-on-HVM vs emulated, in a private instance
#      on its own bridge; the full run is `npm run bench`);
#   2. xenode started, a test LAN on bridge xenbr0 (a LAN host 198.18.0.1 with dnsmasq, inside
#      a namespace of ours; the machine's own network is never touched);
#   3. three guests: `hello` (a shell on its console), `service` (a web server as init, on the
#      LAN) and `own-os` (a busybox system booted from its own disk image), a command run inside
#      `hello` through its console ring, a page fetched from `service` by the LAN host, and a
#      login on `own-os` through `xl console` on a pty (tmux), as a user logs in.
# Everything is left running for you to explore; `xenode lan down; xenode stop` ends it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo; echo "=== 1. driver comparison (quick run; npm run bench for the full one)"
BENCH_QUICK=1 npm run --silent bench || echo "(the comparison did not complete; see above)"

echo; echo "=== 2. xenode, a test LAN and three guests"
xenode start
xenode lan up
# own-os.cfg's disk: a busybox system, made once (under a second).
mkdir -p /var/lib/xenode
[ -f /var/lib/xenode/own-os.img ] || xenode mkimage --from busybox --hostname own-os /var/lib/xenode/own-os.img 16M
for cfg in examples/quickstart/*.cfg; do
  name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$cfg")
  if xl domid "$name" >/dev/null 2>&1; then xl destroy "$name"; fi
  xl create "$cfg"
done
sleep 1
xl list

echo; echo "=== 3a. inside 'hello' (through its console ring)"
tty=$(xenstore-read "/local/domain/$(xl domid hello)/console/tty")
exec 3<>"$tty"
printf 'uname -n; id; ps ax | head -5; ip -o link | cut -d: -f2\n' >&3
timeout 2 cat <&3 | tr -d '\r' || true
exec 3>&-

echo; echo "=== 3b. the LAN host fetches a page from 'service' (198.18.1.10:8080)"
for i in $(seq 1 20); do
  if xenode lan exec -- curl -s -m 2 -o /dev/null -w 'HTTP %{http_code} from the service guest\n' http://198.18.1.10:8080/; then break; fi
  sleep 0.5
done
xl network-list service

echo; echo "=== 3c. a login on 'own-os', its own OS from its own disk (xl console on a pty, through tmux)"
session="xenode-quickstart-$$"
screen() { tmux capture-pane -p -t "$session" | tr -d '\r'; }
await() { for _ in $(seq 1 100); do screen | grep -q "$1" && return 0; sleep 0.1; done; return 1; }
tmux new-session -d -s "$session" -x 120 -y 40 "xl console own-os"
tmux send-keys -t "$session" Enter
if await 'login:'; then
  tmux send-keys -t "$session" root Enter
  await '#$' && tmux send-keys -t "$session" 'clear; hostname; cat /proc/1/cmdline | tr "\0" " "; echo; ls /; df -h / | tail -1' Enter
  sleep 1; screen | sed '/^$/d'
  tmux send-keys -t "$session" exit Enter
else
  echo "(own-os did not show a login prompt in 10 s: xl console own-os to see why)"
fi
tmux kill-session -t "$session" 2>/dev/null || true

echo
echo "xenode is running. Try: xl list | xl console hello | xl console own-os | xenode lan exec -- ping -c 3 198.18.1.10"
echo "                        xl shutdown -w service | xenode lan down | xenode stop"
