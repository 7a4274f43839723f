// TAP: the host end of a virtual NIC (netback's and the device models' frames).
//
// Part of xenode.node (native/xenode.cc registers it; native/index.ts is the contract).

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <vector>

#include "addon.h"

namespace xenode_addon {
namespace {

bool SetOffload(Isolate* iso, int fd, int64_t offloads) {
  if (ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(offloads)) < 0) {
    ThrowErrno(iso, "ioctl(TUNSETOFFLOAD)", errno);
    return false;
  }
  return true;
}

// TUNSETIFF(IFF_TAP|IFF_NO_PI[|IFF_VNET_HDR]) on an open /dev/net/tun fd, then with vnet
// headers TUNSETVNETHDRSZ(12) and TUNSETOFFLOAD. The interface is created in the network
// namespace of whoever OPENED the fd. On success `ifname` holds the kernel's name for it.
bool TapSetIff(Isolate* iso, int fd, const char* name, size_t name_len, bool vnet, int64_t offloads,
               char ifname[IFNAMSIZ]) {
  struct ifreq ifr = {};
  memcpy(ifr.ifr_name, name, name_len);  // "" lets the kernel pick tapN
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  int hdr = 12;  // struct virtio_net_hdr_mrg_rxbuf, what virtio-net with MRG_RXBUF uses
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    ThrowErrno(iso, "ioctl(TUNSETIFF)", errno);
    return false;
  }
  if (vnet && ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
    ThrowErrno(iso, "ioctl(TUNSETVNETHDRSZ)", errno);
    return false;
  }
  if (vnet && !SetOffload(iso, fd, offloads)) return false;
  memcpy(ifname, ifr.ifr_name, IFNAMSIZ);
  ifname[IFNAMSIZ - 1] = 0;
  return true;
}

bool TapArgs(const Args& a, int i, std::vector<char>* name, bool* vnet, int64_t* offloads) {
  Isolate* iso = a.GetIsolate();
  if (!a[i]->IsString()) {
    ThrowType(iso, "name must be a string");
    return false;
  }
  String::Utf8Value n(iso, a[i]);
  if (n.length() >= IFNAMSIZ) {
    ThrowRange(iso, "interface name longer than 15 bytes");
    return false;
  }
  name->assign(*n, *n + n.length());
  return FlagArg(a, i + 1, "vnetHdr", vnet) && IntArg(a, i + 2, "offloads", 0, 0xffff, offloads);
}

Local<Object> TapResult(Isolate* iso, int fd, const char* ifname) {
  Local<Context> ctx = iso->GetCurrentContext();
  Local<Object> res = Object::New(iso);
  res->Set(ctx, Str(iso, "fd"), Integer::New(iso, fd)).Check();
  res->Set(ctx, Str(iso, "name"), Str(iso, ifname)).Check();
  return res;
}

void TapOpen(const Args& a) {
  Isolate* iso = a.GetIsolate();
  std::vector<char> name;
  bool vnet;
  int64_t offloads;
  if (!TapArgs(a, 0, &name, &vnet, &offloads)) return;
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ThrowErrno(iso, "open(/dev/net/tun)", errno);
  char ifname[IFNAMSIZ];
  if (!TapSetIff(iso, fd, name.data(), name.size(), vnet, offloads, ifname)) {
    close(fd);
    return;
  }
  a.GetReturnValue().Set(TapResult(iso, fd, ifname));
}

// tapAttach(fd, name, vnetHdr, offloads): the same on a /dev/net/tun fd opened elsewhere (a
// guest kernel gets them from its jailer, opened inside the guest's network namespace). The
// fd is made O_NONBLOCK | O_CLOEXEC; on failure it stays open and unattached.
void TapAttach(const Args& a) {
  Isolate* iso = a.GetIsolate();
  int fd;
  std::vector<char> name;
  bool vnet;
  int64_t offloads;
  if (!FdArg(a, 0, &fd) || !TapArgs(a, 1, &name, &vnet, &offloads)) return;
  char ifname[IFNAMSIZ];
  if (!TapSetIff(iso, fd, name.data(), name.size(), vnet, offloads, ifname)) return;
  if (!SetFdFlag(iso, fd, F_GETFL, F_SETFL, O_NONBLOCK, true)) return;
  if (!SetFdFlag(iso, fd, F_GETFD, F_SETFD, FD_CLOEXEC, true)) return;
  a.GetReturnValue().Set(TapResult(iso, fd, ifname));
}

void TapSetOffload(const Args& a) {
  int fd;
  int64_t offloads;
  if (!FdArg(a, 0, &fd) || !IntArg(a, 1, "offloads", 0, 0xffff, &offloads)) return;
  SetOffload(a.GetIsolate(), fd, offloads);
}

}  // namespace

void InitTap(Local<Context> context, Local<Object> exports) {
  SetFns(context, exports, {
      {"tapOpen", TapOpen},
      {"tapSetOffload", TapSetOffload},
      {"tapAttach", TapAttach},
  });
  SetInts(context, exports, {
      {"TUN_F_CSUM", TUN_F_CSUM},
      {"TUN_F_TSO4", TUN_F_TSO4},
      {"TUN_F_TSO6", TUN_F_TSO6},
      {"TUN_F_TSO_ECN", TUN_F_TSO_ECN},
  });
}

}  // namespace xenode_addon
