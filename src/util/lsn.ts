/**
 * LSNs as numbers. The replication library hands them out as "X/Y" hex strings, sometimes
 * zero-padded ("00000000/1500E910"), so strings never compare correctly: convert first.
 */
export function parseLsn(lsn: string): bigint {
  const slash = lsn.indexOf('/');
  if (slash < 0) throw new Error(`not an LSN: ${lsn}`);
  const hi = BigInt(`0x${lsn.slice(0, slash) || '0'}`);
  const lo = BigInt(`0x${lsn.slice(slash + 1) || '0'}`);
  return (hi << 32n) | lo;
}

/** Formats an LSN the way PostgreSQL prints it (upper-case hex, no padding). */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}
