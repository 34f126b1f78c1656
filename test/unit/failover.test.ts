import { describe, expect, it } from 'vitest';
import { formatVersion, wantsFailover } from '../../src/source/failover.js';

describe('wantsFailover: whether the bridge makes its slot a failover slot', () => {
  // Failover slots arrived in PostgreSQL 17.0 (server_version_num 170000).
  const pg16 = 160009;
  const pg17 = 170000;
  const pg18 = 180004;

  it('auto: on from PostgreSQL 17, off before', () => {
    expect(wantsFailover('auto', pg16)).toBe(false);
    expect(wantsFailover('auto', pg17)).toBe(true);
    expect(wantsFailover('auto', pg18)).toBe(true);
  });

  it('off: never', () => {
    expect(wantsFailover('off', pg17)).toBe(false);
    expect(wantsFailover('off', pg16)).toBe(false);
  });

  it('on: from 17; before, a start fails naming the key, the version and the remedy', () => {
    expect(wantsFailover('on', pg18)).toBe(true);
    expect(() => wantsFailover('on', pg16)).toThrow(
      'postgres.failover is on, but failover slots need PostgreSQL 17 or later (this server runs 16.9); set postgres.failover: auto (or off)',
    );
  });

  it('formats server_version_num as PostgreSQL prints it', () => {
    expect(formatVersion(170004)).toBe('17.4');
    expect(formatVersion(140023)).toBe('14.23');
  });
});
