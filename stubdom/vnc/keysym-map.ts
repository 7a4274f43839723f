// X11 keysyms (what an RFB KeyEvent carries) -> PC keys (set 1 scan codes, | 0x100 for E0
// keys), for the en-us layout (xl's `keymap`, QEMU's -k en-us): which key makes a character
// and whether Shift must be down for it. A viewer normally sends Shift itself before '!'; one
// that sends the keysym alone gets a Shift press and release around it, as QEMU does.
const UNSHIFTED = '1234567890-=qwertyuiop[]asdfghjkl;\'`\\zxcvbnm,./ ';
const SHIFTED = '!@#$%^&*()_+QWERTYUIOP{}ASDFGHJKL:"~|ZXCVBNM<>? ';
const CODES = [
  0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
  0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
  0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2b,
  0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x39,
];

export const KEY_LEFT_SHIFT = 0x2a;

const SPECIAL: Record<number, number> = {
  0xff08: 0x0e, // BackSpace
  0xff09: 0x0f, // Tab
  0xfe20: 0x0f, // ISO_Left_Tab (Shift+Tab)
  0xff0d: 0x1c, // Return
  0xff1b: 0x01, // Escape
  0xffff: 0x153, // Delete
  0xff50: 0x147, // Home
  0xff51: 0x14b, // Left
  0xff52: 0x148, // Up
  0xff53: 0x14d, // Right
  0xff54: 0x150, // Down
  0xff55: 0x149, // Prior
  0xff56: 0x151, // Next
  0xff57: 0x14f, // End
  0xff63: 0x152, // Insert
  0xff67: 0x15d, // Menu
  0xff8d: 0x11c, // KP_Enter
  0xffe1: 0x2a, // Shift_L
  0xffe2: 0x36, // Shift_R
  0xffe3: 0x1d, // Control_L
  0xffe4: 0x11d, // Control_R
  0xffe5: 0x3a, // Caps_Lock
  0xffe9: 0x38, // Alt_L
  0xffea: 0x138, // Alt_R
  0xfe03: 0x138, // ISO_Level3_Shift (AltGr)
  0xffeb: 0x15b, // Super_L
  0xffec: 0x15c, // Super_R
  0xff7f: 0x45, // Num_Lock
  0xff14: 0x46, // Scroll_Lock
  0xffaa: 0x37, // KP_Multiply
};
const F_KEYS = [0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x40, 0x41, 0x42, 0x43, 0x44, 0x57, 0x58];

export interface MappedKey {
  key: number;
  /** The character needs Shift (true), must not have it (false), or does not care (null). */
  shift: boolean | null;
}

export function keysymToKey(keysym: number): MappedKey | null {
  if (keysym >= 0x20 && keysym < 0x7f) {
    const ch = String.fromCharCode(keysym);
    const u = UNSHIFTED.indexOf(ch);
    if (u >= 0) return { key: CODES[u]!, shift: ch === ' ' ? null : false };
    const s = SHIFTED.indexOf(ch);
    if (s >= 0) return { key: CODES[s]!, shift: true };
    return null;
  }
  if (keysym >= 0xffbe && keysym <= 0xffc9) return { key: F_KEYS[keysym - 0xffbe]!, shift: null };
  const k = SPECIAL[keysym];
  return k === undefined ? null : { key: k, shift: null };
}
