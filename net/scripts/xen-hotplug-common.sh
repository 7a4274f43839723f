# Shared by xenode's hotplug scripts, after Xen's tools/hotplug/Linux/xen-hotplug-common.sh.
#
# The backend (dom0's netback) runs a vif's script as Xen's udev rules / libxl do:
#   SCRIPT online|offline        with the environment
#   XENBUS_PATH=/local/domain/0/backend/vif/<domid>/<devid>   the backend's xenstore dir
#   vif=<interface>              the backend interface (vif<domid>.<devid> or vifname=)
#   XENSTORED_PATH=...           where xenstored listens (the stock xenstore-* tools use it)
# and waits for the script to write "$XENBUS_PATH/hotplug-status": "connected" on success,
# "error" (with "hotplug-error" saying why) on failure. The device connects only after that.

set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

SCRIPT_NAME=$(basename "$0")

log() {
  local level=$1
  shift
  echo "$SCRIPT_NAME: $level: $*" >&2
}

xenstore_read() {
  xenstore-read "$@" || { log err "xenstore-read $* failed."; exit 1; }
}

# xenstore_read_default PATH DEFAULT
xenstore_read_default() {
  xenstore-read "$1" 2>/dev/null || echo "$2"
}

# xenstore_write PATH VALUE [PATH VALUE]...
xenstore_write() {
  xenstore-write "$@" || { log err "xenstore-write $* failed."; exit 1; }
}

fatal() {
  xenstore-write "$XENBUS_PATH/hotplug-error" "$*" "$XENBUS_PATH/hotplug-status" error 2>/dev/null
  log err "$@"
  exit 1
}

success() {
  # Tell the backend it may connect.
  xenstore-rm "$XENBUS_PATH/hotplug-error" 2>/dev/null
  xenstore_write "$XENBUS_PATH/hotplug-status" connected
}

do_or_die() {
  "$@" || fatal "$* failed"
}

do_without_error() {
  "$@" 2>/dev/null || log debug "$* failed"
}

# One lock for all network hotplug work, so two scripts never race over one bridge.
claim_lock() {
  local dir=${XENODE_RUN_DIR:-/run/xenode}
  mkdir -p "$dir" 2>/dev/null
  exec 9>"$dir/hotplug-$1.lock"
  flock -w 30 9 || fatal "could not take the $1 hotplug lock"
}

release_lock() {
  exec 9>&-
}
