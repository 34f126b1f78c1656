import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { applyKeyVariables } from '../../src/config/env-keys.js';
import { loadConfig } from '../../src/config/load-config.js';
import { keyWithOrigin } from '../../src/config/origins.js';
import { KNOWN_KEYS } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';

type Env = Record<string, string | undefined>;

const FILE = {
  postgres: { url: 'postgres://bridge@db:5432/crm' },
  tuzhan: { token: '${TUZHAN_TOKEN}' },
  sources: [
    {
      name: 'profiles',
      table: 'crm.customer_profile',
      mode: 'row',
      columns: { thirdId: 'cust_no', groups: 'grp' },
      where: { Tier: 'gold' },
      match: { isMatching: false },
    },
    {
      name: 'member-groups',
      table: 'crm.member_group',
      mode: 'membership',
      columns: { thirdId: 'member_id', groups: 'group_name' },
      match: { isMatching: false },
    },
  ],
};

const load = (env: Env) =>
  loadConfig({ file: 'bridge.yaml', text: stringify(FILE), env: { TUZHAN_TOKEN: 't', ...env } });

function problems(env: Env): string[] {
  try {
    load(env);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

/** `maxWaitMs` -> `MAX_WAIT_MS`: how the docs tell an operator to spell a key. */
const upperSnake = (key: string) => key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

describe('TUZHAN_CDC__ variables', () => {
  it('reach every key of every section, spelled in capitals with _ between words', () => {
    // From the schema itself, so a key added later is covered too.
    for (const [shape, keys] of KNOWN_KEYS) {
      const path =
        shape === '' ? [] : shape.split('.').flatMap((p) => (p.endsWith('[]') ? [p.slice(0, -2), '0'] : [p]));
      for (const key of keys) {
        const tree = structuredClone(FILE) as Record<string, unknown>;
        const name = ['TUZHAN_CDC', ...path.map(upperSnake), upperSnake(key)].join('__');
        const found = applyKeyVariables(tree, { [name]: 'x' }, []);
        const expected = [...path.map((p) => (/^\d+$/.test(p) ? Number(p) : p)), key];
        expect(
          found.map((f) => f.path),
          name,
        ).toEqual([expected]);
        let node: unknown = tree;
        for (const p of expected) node = (node as Record<string | number, unknown>)[p];
        expect(node, name).toBe('x');
      }
    }
  });

  it('are typed and validated like the file, naming the variable and the key', () => {
    const config = load({
      TUZHAN_CDC__BATCHING__MAX_WAIT_MS: '500',
      TUZHAN_CDC__TUZHAN__RATE_PER_SECOND: '0.5',
      TUZHAN_CDC__HTTP__LISTEN: 'off',
      TUZHAN_CDC__SOURCES__0__MATCH__IS_MATCHING: 'true',
      TUZHAN_CDC__SOURCES__0__MATCH__MATCHING_TYPE: '2',
      TUZHAN_CDC__SOURCES__0__MATCH__IDENTIFY_WAY: '2',
    });
    expect(config.batching.maxWaitMs).toBe(500);
    expect(config.tuzhan.ratePerSecond).toBe(0.5);
    expect(config.http.listen).toBeNull();
    expect(config.sources[0]?.match).toEqual({ isMatching: true, matchingType: 2, identifyWay: 2 });
    expect(keyWithOrigin(config, 'batching.maxWaitMs')).toBe(
      'batching.maxWaitMs (from TUZHAN_CDC__BATCHING__MAX_WAIT_MS)',
    );

    expect(
      problems({ TUZHAN_CDC__BATCHING__MAX_WAIT_MS: 'soon', TUZHAN_CDC__TUZHAN__CONCURRENCY: '0' }),
    ).toEqual([
      'tuzhan.concurrency (from TUZHAN_CDC__TUZHAN__CONCURRENCY): must be at least 1, got 0',
      'batching.maxWaitMs (from TUZHAN_CDC__BATCHING__MAX_WAIT_MS): expected a number, got a string',
    ]);
    expect(problems({ TUZHAN_CDC__BATCHING__MAX_WAIT: '5' })).toEqual([
      'batching.maxWait (from TUZHAN_CDC__BATCHING__MAX_WAIT): unknown key (did you mean `maxWaitMs`?)',
    ]);
  });

  it('name a source by index or name; lists and mappings are YAML; where keeps the columns case', () => {
    const config = load({
      TUZHAN_CDC__SOURCES__PROFILES__KEY: '[cust_no, region]',
      TUZHAN_CDC__SOURCES__MEMBER_GROUPS__MATCH: '{isMatching: true, matchingType: 2, identifyWay: 1}',
      TUZHAN_CDC__SOURCES__0__WHERE__TIER: '[gold, silver]',
      TUZHAN_CDC__SOURCES__0__WHERE__DELETED_AT: '[null]',
      TUZHAN_CDC__SOURCES__1__COLUMNS__PHONE: 'mobile',
    });
    expect(config.sources[0]?.key).toEqual(['cust_no', 'region']);
    expect(config.sources[0]?.where).toEqual({ Tier: ['gold', 'silver'], deleted_at: [null] });
    expect(config.sources[1]?.match).toEqual({ isMatching: true, matchingType: 2, identifyWay: 1 });
    expect(config.sources[1]?.columns).toEqual({
      thirdId: 'member_id',
      groups: 'group_name',
      phone: 'mobile',
    });

    expect(
      problems({ TUZHAN_CDC__SOURCES__2__TABLE: 'crm.x', TUZHAN_CDC__SOURCES__NOPE__MODE: 'row' }),
    ).toEqual([
      'TUZHAN_CDC__SOURCES__2__TABLE: names no source the config lists (0 (profiles), 1 (member-groups)); a variable changes a listed source, by index or name, and does not add one',
      'TUZHAN_CDC__SOURCES__NOPE__MODE: names no source the config lists (0 (profiles), 1 (member-groups)); a variable changes a listed source, by index or name, and does not add one',
    ]);
    expect(problems({ TUZHAN_CDC__SOURCES__0__KEY: '[cust_no' })).toEqual([
      expect.stringMatching(
        /^sources\[0\] \(profiles\)\.key: is not a YAML list or mapping: .* \(from TUZHAN_CDC__SOURCES__0__KEY\)$/,
      ),
    ]);
  });

  it('keep the seven named variables working; both forms for one key is a problem', () => {
    const config = load({ TUZHAN_CDC__LOG__LEVEL: 'debug', TUZHAN_TOKEN: 'env' });
    expect([config.log.level, config.tuzhan.token]).toEqual(['debug', 'env']);
    expect(problems({ LOG_LEVEL: 'warn', TUZHAN_CDC__LOG__LEVEL: 'debug' })).toEqual([
      'log.level (from TUZHAN_CDC__LOG__LEVEL): both LOG_LEVEL and TUZHAN_CDC__LOG__LEVEL are set; set only one',
    ]);
  });

  it('treat credentials as one choice, like TUZHAN_APP_ID, and never parse a secret', () => {
    // The file says token: ${TUZHAN_TOKEN}; app credentials from the environment replace it.
    const app = loadConfig({
      text: stringify(FILE),
      env: { TUZHAN_CDC__TUZHAN__APP_ID: 'app', TUZHAN_CDC__TUZHAN__APP_SECRET: '{not: yaml}' },
    });
    expect([app.tuzhan.token, app.tuzhan.appId, app.tuzhan.appSecret]).toEqual([
      undefined,
      'app',
      '{not: yaml}',
    ]);
  });
});
