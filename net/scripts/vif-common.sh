# Shared by the vif scripts, after Xen's tools/hotplug/Linux/vif-common.sh.
dir=$(dirname "$0")
. "$dir/xen-hotplug-common.sh"

command=${1:-}
case "$command" in
  online|offline|add|remove) ;;
  *) echo "usage: $SCRIPT_NAME online|offline (with XENBUS_PATH and vif set)" >&2; exit 1 ;;
esac

: "${XENBUS_PATH:?XENBUS_PATH is not set}"
: "${vif:?vif is not set}"
dev=$vif
vifname=$(xenstore_read_default "$XENBUS_PATH/vifname" "")
ip=${ip:-}
ip=$(xenstore_read_default "$XENBUS_PATH/ip" "$ip")

# The backend interface must exist when we are asked to bring it online.
if [ "$command" = online ] && [ ! -e "/sys/class/net/$dev" ]; then
  fatal "Could not find the backend interface $dev"
fi

# set_mtu BRIDGE DEV: the vif's mtu= if given, else the bridge's (written back, as Xen does).
set_mtu() {
  local bridge=$1 dev=$2 mtu
  mtu=$(xenstore_read_default "$XENBUS_PATH/mtu" "")
  if [ -n "$mtu" ] && [ "$mtu" -gt 0 ] 2>/dev/null; then
    do_or_die ip link set dev "$dev" mtu "$mtu"
  elif [ -n "$bridge" ] && [ -e "/sys/class/net/$bridge/mtu" ]; then
    mtu=$(cat "/sys/class/net/$bridge/mtu")
    do_or_die ip link set dev "$dev" mtu "$mtu"
    xenstore_write "$XENBUS_PATH/mtu" "$mtu"
  fi
}
