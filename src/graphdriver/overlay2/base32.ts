// The 26-character link IDs under overlay2/l/ (moby overlayutils.GenerateID:
// random bytes, RFC 4648 base32 with the standard upper-case alphabet, cut).
import { randomBytes } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export const LINK_ID_LENGTH = 26;
export const LINK_ID_RE = /^[A-Z2-7]{26}$/;

export function base32(buf: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

export function generateLinkId(): string {
  return base32(randomBytes(Math.ceil((LINK_ID_LENGTH * 5) / 8))).slice(0, LINK_ID_LENGTH);
}
