/** The advisory lock that makes one bridge the active one per slot. */
import { createHash } from 'node:crypto';

/** Two int4 keys: a constant for the product and a hash of the slot name. */
export function leaderLockKey(slot: string): [number, number] {
  const h = createHash('sha256').update(`tuzhan-cdc:slot:${slot}`).digest();
  return [0x747a6c64, h.readInt32BE(0)];
}
