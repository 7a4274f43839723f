{
  # Two products, both rebuilt by `npm install` (node-gyp rebuild):
  #  - xenode.node: the addon (native/index.ts describes its interface). It uses the V8 C++ API
  #    (SharedArrayBuffer over mmap'd memory), so it is tied to the Node major it was built for.
  #  - xenode-jailer: a plain C executable that builds a domain's sandbox (native/jailer.c).
  #  - xenode-rootboot: run by a guest kernel (inside the sandbox) to start the init of the
  #    guest's own root filesystem in a pid namespace of its own (native/rootboot.c).
  'target_defaults': {
    'configurations': {
      # node's common.gypi asks for -O3; -O2 is plenty for thin syscall wrappers.
      'Release': { 'cflags!': ['-O3'], 'cflags': ['-O2'] },
    },
  },
  'targets': [
    {
      'target_name': 'xenode',
      # xenode.cc registers the exports of the host primitives, one file per kind (addon.h).
      'sources': ['native/xenode.cc', 'native/addon-args.cc', 'native/memory.cc', 'native/futex.cc',
                  'native/eventfd.cc', 'native/fd-watch.cc', 'native/fd-io.cc', 'native/unix-sockets.cc',
                  'native/tap.cc', 'native/pty.cc', 'native/processes.cc', 'native/mounts.cc',
                  'native/kvm.cc', 'native/kvm-state.cc', 'native/uring.cc'],
      # node.h's NODE_MODULE_INIT casts the init function; not our warning to fix.
      'cflags': ['-Wall', '-Wno-cast-function-type'],
      'cflags_cc!': ['-std=gnu++17'],
      'cflags_cc': ['-std=c++17'],
    },
    {
      'target_name': 'xenode-jailer',
      'type': 'executable',
      'sources': ['native/jailer.c'],
      'cflags': ['-Wall', '-std=gnu11'],
    },
    { 'target_name': 'xenode-stubdom-sandbox', 'type': 'executable', 'sources': ['native/stubdom-sandbox.c'], 'cflags': ['-Wall', '-std=gnu11'] },
    {
      'target_name': 'xenode-rootboot',
      'type': 'executable',
      'sources': ['native/rootboot.c'],
      'cflags': ['-Wall', '-std=gnu11'],
    },
  ],
}
