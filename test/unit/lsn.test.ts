import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatLsn, parseLsn } from '../../src/util/lsn.js';

const U64_MAX = (1n << 64n) - 1n;

describe('parseLsn / formatLsn', () => {
  it('parses the library form (zero-padded) and the server form to the same number', () => {
    expect(parseLsn('00000000/1500E910')).toBe(0x1500e910n);
    expect(parseLsn('0/1500E910')).toBe(0x1500e910n);
    expect(parseLsn('0/1500e910')).toBe(0x1500e910n);
  });

  it('puts the part before the slash in the high 32 bits', () => {
    expect(parseLsn('1/0')).toBe(1n << 32n);
    expect(parseLsn('00000001/00000000')).toBe(4294967296n);
    expect(parseLsn('2A/10')).toBe((0x2an << 32n) + 0x10n);
    expect(parseLsn('FFFFFFFF/FFFFFFFF')).toBe(U64_MAX);
    expect(formatLsn(1n << 32n)).toBe('1/0');
    expect(formatLsn((0x2an << 32n) | 0x1500e910n)).toBe('2A/1500E910');
  });

  it('formats like PostgreSQL: upper-case hex, no padding', () => {
    expect(formatLsn(0n)).toBe('0/0');
    expect(formatLsn(0x1500e910n)).toBe('0/1500E910');
    expect(formatLsn(U64_MAX)).toBe('FFFFFFFF/FFFFFFFF');
  });

  it('orders numerically where the strings order wrongly', () => {
    // As strings, "00000000/0000000A" > "0/10" and "0/A" > "0/10"; as positions both are smaller.
    expect('00000000/0000000A' > '0/10').toBe(true);
    expect(parseLsn('00000000/0000000A') < parseLsn('0/10')).toBe(true);
    expect(parseLsn('0/A') < parseLsn('0/10')).toBe(true);
    expect(parseLsn('0/FFFFFFFF') < parseLsn('00000001/00000000')).toBe(true);
  });

  it('rejects text without a slash', () => {
    expect(() => parseLsn('1500E910')).toThrow(/not an LSN/);
  });

  it('round-trips every 64-bit position (formatted and padded)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: U64_MAX }), (lsn) => {
        expect(parseLsn(formatLsn(lsn))).toBe(lsn);
        const hi = (lsn >> 32n).toString(16).padStart(8, '0').toUpperCase();
        const lo = (lsn & 0xffffffffn).toString(16).padStart(8, '0').toUpperCase();
        expect(parseLsn(`${hi}/${lo}`)).toBe(lsn);
      }),
    );
  });

  it('keeps the order of positions (padded vs unpadded)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: U64_MAX }), fc.bigInt({ min: 0n, max: U64_MAX }), (a, b) => {
        const padded = `${(a >> 32n).toString(16).padStart(8, '0')}/${(a & 0xffffffffn).toString(16).padStart(8, '0')}`;
        const cmp = (x: bigint, y: bigint) => (x < y ? -1 : x > y ? 1 : 0);
        expect(cmp(parseLsn(padded), parseLsn(formatLsn(b)))).toBe(cmp(a, b));
      }),
    );
  });
});
