// VNC Authentication (RFC 6143 7.2.2): the server sends 16 random bytes, the client returns
// them DES-encrypted (ECB) with the password as key - at most 8 bytes, zero-padded, each key
// byte's bits reversed (the historical d3des quirk). Node 20's OpenSSL 3 keeps single DES in
// the legacy provider, but two-key triple DES with K||K is single DES and is in the default one.
import { createCipheriv, randomBytes, timingSafeEqual } from 'node:crypto';

export const CHALLENGE_BYTES = 16;

function reverseBits(b: number): number {
  let r = 0;
  for (let i = 0; i < 8; i++) if (b & (1 << i)) r |= 0x80 >> i;
  return r;
}

/** The DES key a VNC password makes (8 bytes, bit-reversed). */
export function vncKey(password: string): Buffer {
  const pw = Buffer.from(password, 'latin1');
  const key = Buffer.alloc(8);
  for (let i = 0; i < 8; i++) key[i] = reverseBits(i < pw.length ? pw[i]! : 0);
  return key;
}

/** What a client that knows `password` answers to `challenge`. */
export function vncResponse(password: string, challenge: Uint8Array): Buffer {
  const key = vncKey(password);
  const des = createCipheriv('des-ede-ecb', Buffer.concat([key, key]), null);
  des.setAutoPadding(false);
  return Buffer.concat([des.update(challenge), des.final()]);
}

export function newChallenge(): Buffer {
  return randomBytes(CHALLENGE_BYTES);
}

export function responseMatches(password: string, challenge: Uint8Array, response: Uint8Array): boolean {
  return response.length === CHALLENGE_BYTES && timingSafeEqual(vncResponse(password, challenge), response);
}
