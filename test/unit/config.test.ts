import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig, parseTableName } from '../../src/config/load-config.js';
import { describeOrigin, keyWithOrigin } from '../../src/config/origins.js';
import { ConfigError } from '../../src/errors.js';

const EXAMPLE_FILE = fileURLToPath(new URL('../../config/bridge.yaml', import.meta.url));

type Tree = Record<string, unknown>;

/** A minimal valid config; tests change one thing at a time. */
function base(): Tree {
  return {
    postgres: { url: 'postgres://bridge@db:5432/crm' },
    tuzhan: { token: 'tok' },
    sources: [
      {
        name: 'profiles',
        table: 'crm.customer_profile',
        mode: 'row',
        columns: { thirdId: 'cust_no', groups: 'grp' },
        match: { isMatching: false },
      },
    ],
  };
}

function with_(change: (c: Tree & { sources: Tree[] }) => void): Tree {
  const c = base() as Tree & { sources: Tree[] };
  change(c);
  return c;
}

function load(config: Tree | string, env: Record<string, string | undefined> = {}) {
  return loadConfig({ text: typeof config === 'string' ? config : stringify(config), env });
}

function problems(config: Tree | string, env: Record<string, string | undefined> = {}): string[] {
  try {
    load(config, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return [...(err as ConfigError).problems];
  }
  throw new Error('expected the config to be rejected');
}

const source0 = (c: Tree & { sources: Tree[] }) => c.sources[0]!;
const match0 = (c: Tree & { sources: Tree[] }) => source0(c).match as Tree;

describe('loadConfig: defaults and the SPEC example', () => {
  it('fills every default into a minimal config', () => {
    const config = load(base());
    expect(config.postgres).toEqual({
      url: 'postgres://bridge@db:5432/crm',
      slot: 'tuzhan_cdc',
      publication: 'tuzhan_cdc',
      statusSchema: 'tuzhan_sync',
      onSlotLost: 'stop',
      failover: 'auto',
      lagWarnBytes: 1024 ** 3,
    });
    expect(config.tuzhan).toEqual({
      baseUrl: 'https://integrate.rabbitpre.com',
      batchAddPath: '/api/integrate/audience/group/rel/batchAdd',
      token: 'tok',
      timeoutMs: 10000,
      concurrency: 4,
      ratePerSecond: 0,
      notReadyAfterMs: 30000,
    });
    expect(config.batching).toEqual({
      maxBatchSize: 500,
      debounceMs: 200,
      maxWaitMs: 2000,
      maxBufferedRows: 10000,
    });
    expect(config.http.listen).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(config.log.level).toBe('info');
    expect(config.sources[0]).toEqual({
      name: 'profiles',
      table: 'crm.customer_profile',
      schema: 'crm',
      tableName: 'customer_profile',
      mode: 'row',
      columns: { thirdId: 'cust_no', groups: 'grp' },
      match: { isMatching: false },
      deleteLookup: 'none',
      onTruncate: 'resync',
      guard: { maxRemovals: { kind: 'default' } },
    });
    expect(config.sources[0]).not.toHaveProperty('key');
  });

  it('loads the SPEC section 11 example with the environment set', () => {
    const config = loadConfig({
      file: EXAMPLE_FILE,
      env: { DATABASE_URL: 'postgresql://bridge:pw@db/crm', TUZHAN_TOKEN: 'secret-token' },
    });
    expect(config.postgres.url).toBe('postgresql://bridge:pw@db/crm');
    expect(config.tuzhan.token).toBe('secret-token');
    expect(config.sources.map((s) => [s.name, s.schema, s.tableName, s.mode])).toEqual([
      ['profiles', 'crm', 'customer_profile', 'row'],
      ['memberships', 'crm', 'member_group', 'membership'],
    ]);
    expect(config.sources[0]!.key).toEqual(['cust_no']);
    expect(config.sources[0]!.columns.groups).toBe('Group Names');
    expect(config.sources[1]!.match).toEqual({ isMatching: true, matchingType: 2, identifyWay: 2 });
    expect(config.postgres.onSlotLost).toBe('stop');
  });

  it('takes the keys SPEC section 11 shows commented out: postgres.ssl and http.token', () => {
    const config = load(
      with_((c) => {
        (c.postgres as Tree).onSlotLost = 'resync';
        (c.postgres as Tree).ssl = { ca: '/run/secrets/ca.pem', verify: 'ca' };
        c.http = { listen: '0.0.0.0:9464', token: 'ops-secret' };
      }),
    );
    expect(config.postgres.onSlotLost).toBe('resync');
    expect(config.postgres.ssl).toEqual({ ca: '/run/secrets/ca.pem', verify: 'ca' });
    expect(config.http).toEqual({ listen: { host: '0.0.0.0', port: 9464 }, token: 'ops-secret' });
    expect(load(with_((c) => ((c.postgres as Tree).ssl = {}))).postgres.ssl).toEqual({ verify: 'full' });
  });

  it('reads postgres.failover as auto, on or off, and YAML 1.1 booleans as on and off', () => {
    const failover = (v: unknown) =>
      load(with_((c) => ((c.postgres as Tree).failover = v))).postgres.failover;
    expect([failover('on'), failover('off'), failover('auto')]).toEqual(['on', 'off', 'auto']);
    expect([failover(true), failover(false), failover('true'), failover('false')]).toEqual([
      'on',
      'off',
      'on',
      'off',
    ]);
  });

  it('requires http.token when the ops endpoint listens beyond loopback', () => {
    expect(problems(with_((c) => (c.http = { listen: '0.0.0.0:9464' })))).toEqual([
      'http.token: is required when http.listen is not loopback (0.0.0.0): the endpoints would be open to the network',
    ]);
    expect(load(with_((c) => (c.http = { listen: '127.0.0.2:9464' }))).http.token).toBeUndefined();
    expect(problems(with_((c) => ((c.postgres as Tree).onSlotLost = 'ignore')))).toEqual([
      'postgres.onSlotLost: expected stop or resync, got "ignore"',
    ]);
    expect(problems(with_((c) => ((c.postgres as Tree).failover = 'yes')))).toEqual([
      'postgres.failover: expected one of auto, on, off, got "yes"',
    ]);
    expect(problems(with_((c) => ((c.postgres as Tree).ssl = { verify: 'yes' })))).toEqual([
      'postgres.ssl.verify: expected one of full, ca, none, got "yes"',
    ]);
  });

  it('names the key and the variable when a ${VAR} is not set', () => {
    expect(() => loadConfig({ file: EXAMPLE_FILE, env: { TUZHAN_TOKEN: 't' } })).toThrow(
      'postgres.url: environment variable DATABASE_URL is not set',
    );
    const lines = problems(with_((c) => ((c.postgres as Tree).url = '${DATABASE_URL}')));
    // The variable is the cause: no second line saying `${DATABASE_URL}` is not a URL.
    expect(lines).toEqual(['postgres.url: environment variable DATABASE_URL is not set']);
  });

  it('uses app credentials from the environment even though the example file says token: ${TUZHAN_TOKEN}', () => {
    const config = loadConfig({
      file: EXAMPLE_FILE,
      env: { DATABASE_URL: 'postgres://db/crm', TUZHAN_APP_ID: 'app', TUZHAN_APP_SECRET: 's3' },
    });
    expect(config.tuzhan.token).toBeUndefined();
    expect(config.tuzhan.appId).toBe('app');
    expect(config.tuzhan.appSecret).toBe('s3');
  });

  it('reports TUZHAN_TOKEN together with TUZHAN_APP_ID as both kinds of credentials', () => {
    expect(problems(base(), { TUZHAN_TOKEN: 't', TUZHAN_APP_ID: 'a', TUZHAN_APP_SECRET: 's' })).toEqual([
      'tuzhan.token (from TUZHAN_TOKEN): set either token or appId + appSecret, not both',
    ]);
  });

  it('returns a deeply frozen object', () => {
    const config = load(base());
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.sources[0]!.columns)).toBe(true);
    expect(Object.isFrozen(config.http.listen)).toBe(true);
    expect(() => {
      (config.tuzhan as { concurrency: number }).concurrency = 9;
    }).toThrow(TypeError);
  });

  it('reads the default file and reports a missing one', () => {
    expect(() => loadConfig({ file: '/nonexistent/bridge.yaml', env: {} })).toThrow(
      'config file /nonexistent/bridge.yaml not found',
    );
  });
});

describe('loadConfig: environment', () => {
  it('substitutes ${VAR} inside strings, with ${VAR:-default} and the $${ escape', () => {
    const config = load(
      with_((c) => {
        (c.postgres as Tree).url = 'postgres://bridge@${DB_HOST}:5432/${DB_NAME:-crm}';
        (c.tuzhan as Tree).token = 'literal-$${not-a-var}';
      }),
      { DB_HOST: 'db.internal' },
    );
    expect(config.postgres.url).toBe('postgres://bridge@db.internal:5432/crm');
    expect(config.tuzhan.token).toBe('literal-${not-a-var}');
  });

  it('reads numbers and booleans substituted as text', () => {
    const config = load(
      with_((c) => {
        c.tuzhan = { token: 'tok', concurrency: '${CONCURRENCY}' };
        match0(c).isMatching = '${MATCH:-false}';
      }),
      { CONCURRENCY: '8' },
    );
    expect(config.tuzhan.concurrency).toBe(8);
    expect(config.sources[0]!.match.isMatching).toBe(false);
  });

  it('treats an empty variable as unset', () => {
    expect(
      problems(
        with_((c) => ((c.tuzhan as Tree).token = '${TOKEN}')),
        { TOKEN: '' },
      ),
    ).toEqual(['tuzhan.token: environment variable TOKEN is not set']);
  });

  it('applies every override variable when set and non-empty', () => {
    const config = load(
      with_((c) => ((c.tuzhan as Tree).token = '${TUZHAN_TOKEN}')),
      {
        DATABASE_URL: 'postgres://other/db',
        TUZHAN_BASE_URL: 'http://127.0.0.1:8080/',
        TUZHAN_TOKEN: 'env-token',
        LOG_LEVEL: 'DEBUG',
        TUZHAN_APP_ID: '',
      },
    );
    expect(config.postgres.url).toBe('postgres://other/db');
    expect(config.tuzhan.baseUrl).toBe('http://127.0.0.1:8080');
    expect(config.tuzhan.token).toBe('env-token');
    expect(config.tuzhan.appId).toBeUndefined();
    expect(config.log.level).toBe('debug');
  });

  it('takes http.token from TUZHAN_CDC_HTTP_TOKEN, which then allows a listen beyond loopback', () => {
    const open = with_((c) => (c.http = { listen: '0.0.0.0:9464' }));
    expect(problems(open, {})).toEqual([
      'http.token: is required when http.listen is not loopback (0.0.0.0): the endpoints would be open to the network',
    ]);
    expect(load(open, { TUZHAN_CDC_HTTP_TOKEN: 'console-secret' }).http.token).toBe('console-secret');
  });

  it('takes appSecret from the environment next to an appId in the file', () => {
    const config = load(
      with_((c) => (c.tuzhan = { appId: 'file-app' })),
      { TUZHAN_APP_SECRET: 'env-secret' },
    );
    expect([config.tuzhan.appId, config.tuzhan.appSecret, config.tuzhan.token]).toEqual([
      'file-app',
      'env-secret',
      undefined,
    ]);
  });

  it('names the variable a bad overridden value came from', () => {
    expect(problems(base(), { LOG_LEVEL: 'loud' })).toEqual([
      'log.level (from LOG_LEVEL): expected one of fatal, error, warn, info, debug, trace, got "loud"',
    ]);
  });

  it('rejects a malformed reference', () => {
    expect(problems(with_((c) => ((c.postgres as Tree).slot = '${1BAD}')))).toContain(
      'postgres.slot: has a malformed ${...} reference; expected ${NAME} or ${NAME:-default}',
    );
  });
});

describe('loadConfig: where each value came from', () => {
  const text = stringify(
    with_((c) => {
      c.postgres = { url: '${DATABASE_URL}', slot: 'cdc_${SITE}_${STAGE}' };
      c.tuzhan = { token: '${TZ_TOKEN}', baseUrl: 'https://tz.example' };
    }),
  );

  it('names the file, the ${VAR} substituted and the override variable, never the value', () => {
    const env = {
      DATABASE_URL: 'postgres://db/crm',
      SITE: 'sh',
      STAGE: 'prod',
      TUZHAN_BASE_URL: 'https://b.example',
    };
    const config = loadConfig({
      file: '/etc/tuzhan/bridge.yaml',
      text,
      env: { ...env, TZ_TOKEN: 'secret-tok' },
    });
    expect(keyWithOrigin(config, 'tuzhan.token')).toBe(
      'tuzhan.token (from ${TZ_TOKEN} in /etc/tuzhan/bridge.yaml)',
    );
    expect(keyWithOrigin(config.tuzhan, 'tuzhan.baseUrl')).toBe('tuzhan.baseUrl (from TUZHAN_BASE_URL)');
    expect(keyWithOrigin(config.postgres, 'postgres.slot')).toBe(
      'postgres.slot (from ${SITE}, ${STAGE} in /etc/tuzhan/bridge.yaml)',
    );
    expect(keyWithOrigin(config.sources[0]!, 'sources.0.columns.groups')).toBe(
      'sources.0.columns.groups (in /etc/tuzhan/bridge.yaml)',
    );
    // A default has no origin to name.
    expect(keyWithOrigin(config, 'batching.maxWaitMs')).toBe('batching.maxWaitMs');

    // The override beats the file: TUZHAN_TOKEN replaces the key, whatever the file says (the
    // example file's `token: ${TUZHAN_TOKEN}` included).
    const overridden = loadConfig({ file: 'bridge.yaml', text, env: { ...env, TUZHAN_TOKEN: 'secret-tok' } });
    expect(keyWithOrigin(overridden.tuzhan, 'tuzhan.token')).toBe('tuzhan.token (from TUZHAN_TOKEN)');
    expect(keyWithOrigin(overridden.tuzhan, 'tuzhan.token')).not.toContain('secret-tok');
  });

  it('says which way a secret was read: TUZHAN_TOKEN or the file TUZHAN_TOKEN_FILE names', () => {
    expect(describeOrigin({ kind: 'override', variable: 'TUZHAN_TOKEN_FILE' })).toBe(
      'from TUZHAN_TOKEN_FILE',
    );
    expect(
      describeOrigin({
        kind: 'substitution',
        file: 'bridge.yaml',
        references: [{ name: 'TUZHAN_TOKEN', from: 'TUZHAN_TOKEN_FILE' }],
      }),
    ).toBe('from ${TUZHAN_TOKEN} (read from TUZHAN_TOKEN_FILE) in bridge.yaml');
  });

  it('knows no origin for a config built in code', () => {
    expect(keyWithOrigin(structuredClone(load(base())), 'tuzhan.token')).toBe('tuzhan.token');
  });
});

describe('loadConfig: file-level problems', () => {
  it('reports a YAML syntax error with its line, without quoting the line', () => {
    const lines = problems('postgres:\n  url: postgres://db/crm\ntuzhan:\n  token: "s3cr3t-value\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^config:5:1: YAML syntax error: Missing closing "quote/);
    expect(lines[0]).not.toContain('s3cr3t');
  });

  it('rejects a top level that is not a mapping', () => {
    expect(problems('- a\n- b\n')[0]).toMatch(/^config: the top level must be a mapping .* got a list$/);
    expect(problems('')[0]).toMatch(/got an empty document$/);
  });

  it('reports unknown keys with the nearest known key', () => {
    const lines = problems(
      with_((c) => {
        c.postgress = {};
        c.batching = { debounce: 100 };
        (source0(c).columns as Tree).group = 'g';
        source0(c).colums = 'red';
      }),
    );
    expect(lines).toEqual([
      'postgress: unknown key (did you mean `postgres`?)',
      'batching.debounce: unknown key (did you mean `debounceMs`?)',
      'sources[0] (profiles).columns.group: unknown key (did you mean `groups`?)',
      'sources[0] (profiles).colums: unknown key (did you mean `columns`?)',
    ]);
  });

  it('lists the known keys when nothing is close', () => {
    expect(problems(with_((c) => (c.http = { zzzzzzzz: 1 })))).toEqual([
      'http.zzzzzzzz: unknown key (known keys: listen, token)',
    ]);
  });
});

describe('loadConfig: sources', () => {
  it('requires at least one source', () => {
    expect(problems(with_((c) => (c.sources = [])))).toEqual([
      'sources: no sources; list at least one table to sync',
    ]);
    const { sources: _, ...noSources } = base();
    expect(problems(noSources)).toEqual(['sources: no sources; list at least one table to sync']);
  });

  it('rejects duplicate and badly formed source names', () => {
    const lines = problems(
      with_((c) => {
        c.sources.push({ ...source0(c) }, { ...source0(c), name: 'crm profiles' });
      }),
    );
    expect(lines).toEqual([
      'sources[1] (profiles).name: duplicate source name "profiles" (also sources[0])',
      'sources[2].name: must match ^[A-Za-z0-9_.-]+$ (it is used as a metrics label)',
    ]);
  });

  it('rejects a table without schema', () => {
    expect(problems(with_((c) => (source0(c).table = 'customer_profile')))).toEqual([
      'sources[0] (profiles).table: "customer_profile" has no schema; write it schema-qualified, e.g. public.customer_profile',
    ]);
  });

  it('requires groups and at least one identity column', () => {
    expect(problems(with_((c) => (source0(c).columns = { groups: 'grp' })))).toEqual([
      'sources[0] (profiles).columns: no identity column at all; map at least one of thirdId, openid, unionid, phone',
    ]);
    expect(problems(with_((c) => (source0(c).columns = { phone: 'mobile' })))).toEqual([
      'sources[0] (profiles).columns.groups: is required',
    ]);
  });

  it('validates mode, key, where, deleteLookup and onTruncate', () => {
    const lines = problems(
      with_((c) => {
        Object.assign(source0(c), {
          mode: 'rows',
          key: [],
          where: { status: { eq: 1 } },
          deleteLookup: 'lookup',
          onTruncate: 'delete',
        });
      }),
    );
    expect(lines).toEqual([
      'sources[0] (profiles).mode: expected row or membership, got "rows"',
      'sources[0] (profiles).key: must not be empty',
      'sources[0] (profiles).where.status: expected a scalar (string, number, boolean or null) or a non-empty list of scalars',
      'sources[0] (profiles).deleteLookup: expected none or state, got "lookup"',
      'sources[0] (profiles).onTruncate: expected one of resync, ignore, delete-all, got "delete"',
    ]);
  });

  it('accepts where filters of scalars, lists and null, and a single key column', () => {
    const config = load(
      with_((c) =>
        Object.assign(source0(c), {
          key: 'cust_no',
          where: { active: true, tier: [1, 2], deleted_at: null },
        }),
      ),
    );
    expect(config.sources[0]!.key).toEqual(['cust_no']);
    expect(config.sources[0]!.where).toEqual({ active: true, tier: [1, 2], deleted_at: null });
  });
});

describe('loadConfig: match', () => {
  const matchProblems = (m: Tree, columns?: Tree) =>
    problems(
      with_((c) => {
        source0(c).match = m;
        if (columns) source0(c).columns = columns;
      }),
    );

  it('requires matchingType when isMatching is true, and only 1 or 2', () => {
    expect(matchProblems({ isMatching: true })).toEqual([
      'sources[0] (profiles).match.matchingType: is required when isMatching is true (1 exact, 2 fuzzy)',
    ]);
    expect(matchProblems({ isMatching: true, matchingType: 3 })).toEqual([
      'sources[0] (profiles).match.matchingType: expected 1 or 2, got 3',
    ]);
    expect(matchProblems({ matchingType: 2, identifyWay: 1 })).toEqual([
      'sources[0] (profiles).match.isMatching: is required',
    ]);
  });

  it('requires identifyWay for fuzzy matching', () => {
    expect(matchProblems({ isMatching: true, matchingType: 2 })).toEqual([
      'sources[0] (profiles).match.identifyWay: is required for fuzzy matching (matchingType 2): 1 = unionid>openid>phone>thirdId, 2 = thirdId>phone>openid>unionid',
    ]);
    expect(matchProblems({ isMatching: true, matchingType: 2, identifyWay: 3 })).toEqual([
      'sources[0] (profiles).match.identifyWay: expected 1 or 2, got 3',
    ]);
  });

  it('requires accurateMatchType and a mapped identityType for exact matching', () => {
    expect(matchProblems({ isMatching: true, matchingType: 1 })).toEqual([
      'sources[0] (profiles).match.accurateMatchType: is required for exact matching (matchingType 1): one of gzh, workwechat, YOUZAN, EZR, contentminiapp, contenthome',
      'sources[0] (profiles).match.identityType: is required for exact matching (matchingType 1): one of thirdId, openid, unionid, phone',
    ]);
    expect(
      matchProblems({ isMatching: true, matchingType: 1, accurateMatchType: 'gzh', identityType: 'openid' }),
    ).toEqual([
      'sources[0] (profiles).match.identityType: openid is not mapped in columns; add columns.openid or pick a mapped identity',
    ]);
    expect(
      matchProblems({
        isMatching: true,
        matchingType: 1,
        accurateMatchType: 'wechat',
        identityType: 'thirdId',
      }),
    ).toEqual([
      'sources[0] (profiles).match.accurateMatchType: expected one of gzh, workwechat, YOUZAN, EZR, contentminiapp, contenthome, got "wechat"',
    ]);
  });

  it('accepts a complete exact match', () => {
    const config = load(
      with_((c) => {
        source0(c).match = {
          isMatching: true,
          matchingType: 1,
          accurateMatchType: 'gzh',
          accurateMatchValue: 'wx123',
          identityType: 'thirdId',
        };
      }),
    );
    expect(config.sources[0]!.match.identityType).toBe('thirdId');
  });

  it('rejects parameters of the other matching type', () => {
    expect(
      matchProblems({ isMatching: true, matchingType: 2, identifyWay: 1, identityType: 'thirdId' }),
    ).toEqual(['sources[0] (profiles).match.identityType: only applies to exact matching (matchingType 1)']);
  });
});

describe('loadConfig: numbers, names and URLs', () => {
  it('bounds maxBatchSize to 1..500', () => {
    expect(problems(with_((c) => (c.batching = { maxBatchSize: 501 })))).toEqual([
      'batching.maxBatchSize: must be at most 500, got 501',
    ]);
    expect(problems(with_((c) => (c.batching = { maxBatchSize: 0 })))).toEqual([
      'batching.maxBatchSize: must be at least 1, got 0',
    ]);
  });

  it('rejects debounceMs above maxWaitMs, also against the default maxWaitMs', () => {
    expect(problems(with_((c) => (c.batching = { debounceMs: 300, maxWaitMs: 100 })))).toEqual([
      'batching.debounceMs: must not exceed batching.maxWaitMs (300 > 100)',
    ]);
    expect(problems(with_((c) => (c.batching = { debounceMs: 2500 })))).toEqual([
      'batching.debounceMs: must not exceed batching.maxWaitMs (2500 > 2000)',
    ]);
  });

  it('rejects negative numbers, non-integers, a zero concurrency and wrong types', () => {
    const lines = problems(
      with_((c) => {
        c.tuzhan = { token: 'tok', timeoutMs: 1.5, concurrency: 0, ratePerSecond: -1 };
        c.batching = { maxBufferedRows: 'many', debounceMs: -5 };
      }),
    );
    expect(lines).toEqual([
      'tuzhan.timeoutMs: expected an integer, got 1.5',
      'tuzhan.concurrency: must be at least 1, got 0',
      'tuzhan.ratePerSecond: must be at least 0, got -1',
      'batching.debounceMs: must be at least 0, got -5',
      'batching.maxBufferedRows: expected a number, got a string',
    ]);
  });

  it('requires exactly one kind of credentials', () => {
    expect(problems(with_((c) => (c.tuzhan = { token: 't', appId: 'a', appSecret: 's' })))).toEqual([
      'tuzhan.token: set either token or appId + appSecret, not both',
    ]);
    expect(problems(with_((c) => (c.tuzhan = {})))).toEqual([
      'tuzhan.token: is required: set token (or TUZHAN_TOKEN), or appId and appSecret (or TUZHAN_APP_ID and TUZHAN_APP_SECRET)',
    ]);
    expect(problems(with_((c) => (c.tuzhan = { appId: 'a' })))).toEqual([
      'tuzhan.appSecret: is required with appId (or set TUZHAN_APP_SECRET)',
    ]);
  });

  it('validates slot, publication and statusSchema names', () => {
    const lines = problems(
      with_(
        (c) =>
          (c.postgres = {
            url: 'postgres://db/crm',
            slot: 'Tuzhan-CDC',
            publication: 'pub;drop',
            statusSchema: '',
          }),
      ),
    );
    expect(lines).toEqual([
      'postgres.slot: must be a plain replication slot name: lower-case letters, digits and _, starting with a letter or _, at most 63 bytes',
      'postgres.publication: must be a plain publication name: lower-case letters, digits and _, starting with a letter or _, at most 63 bytes',
      'postgres.statusSchema: must be a schema name of 1 to 63 bytes',
    ]);
    expect(problems(with_((c) => ((c.postgres as Tree).statusSchema = 'é'.repeat(32))))).toHaveLength(1);
    expect(
      load(with_((c) => ((c.postgres as Tree).statusSchema = 'Tuzhan Sync'))).postgres.statusSchema,
    ).toBe('Tuzhan Sync');
  });

  it('validates URLs and the path', () => {
    const lines = problems(
      with_((c) => {
        c.postgres = { url: 'mysql://db/crm' };
        c.tuzhan = { token: 't', baseUrl: 'integrate.rabbitpre.com', batchAddPath: 'api/batchAdd' };
      }),
    );
    expect(lines).toEqual([
      'postgres.url: must be a postgres:// or postgresql:// URL',
      'tuzhan.baseUrl: must be an http:// or https:// URL',
      'tuzhan.batchAddPath: must be a path starting with /',
    ]);
    const { postgres: _, ...noPostgres } = base();
    expect(problems(noPostgres)).toEqual(['postgres.url: is required (or set DATABASE_URL)']);
  });

  it('parses http.listen', () => {
    const listen = (v: unknown) => load(with_((c) => (c.http = { listen: v, token: 't' }))).http.listen;
    expect(listen('off')).toBeNull();
    expect(listen(':9000')).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(listen(9001)).toEqual({ host: '127.0.0.1', port: 9001 });
    expect(listen('0.0.0.0:80')).toEqual({ host: '0.0.0.0', port: 80 });
    expect(listen('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    expect(problems(with_((c) => (c.http = { listen: '127.0.0.1:70000' })))).toEqual([
      'http.listen: port must be an integer from 1 to 65535',
    ]);
    expect(problems(with_((c) => (c.http = { listen: 'localhost' })))).toEqual([
      'http.listen: expected host:port, :port, a port number, or off',
    ]);
  });

  it('reports many problems at once, in file order', () => {
    const lines = problems(
      with_((c) => {
        c.sources.push({
          name: 'memberships',
          table: 'member_group',
          mode: 'membership',
          columns: {},
          match: {},
        });
        c.batching = { maxBatchSize: 1000 };
        c.tuzhan = {};
      }),
    );
    expect(lines).toEqual([
      'tuzhan.token: is required: set token (or TUZHAN_TOKEN), or appId and appSecret (or TUZHAN_APP_ID and TUZHAN_APP_SECRET)',
      'batching.maxBatchSize: must be at most 500, got 1000',
      'sources[1] (memberships).columns.groups: is required',
      'sources[1] (memberships).match.isMatching: is required',
      'sources[1] (memberships).table: "member_group" has no schema; write it schema-qualified, e.g. public.member_group',
      'sources[1] (memberships).columns: no identity column at all; map at least one of thirdId, openid, unionid, phone',
    ]);
  });

  it('never echoes a secret in a message', () => {
    const secrets = ['SECRET-TOKEN-1', 'SECRET-APP-2', 'SECRET-PW-3'];
    const lines = [
      ...problems(
        with_((c) => {
          c.postgres = { url: 'mysql://u:SECRET-PW-3@db/crm' };
          c.tuzhan = { token: 'SECRET-TOKEN-1', appSecret: 'SECRET-APP-2', timeoutMs: 'SECRET-TOKEN-1' };
        }),
      ),
      ...problems(with_((c) => (c.tuzhan = { token: ['SECRET-TOKEN-1'] }))),
      ...problems(base(), { DATABASE_URL: 'SECRET-PW-3', TUZHAN_APP_SECRET: 'SECRET-APP-2' }),
      ...problems('tuzhan:\n  token: SECRET-TOKEN-1: x\n'),
      ...problems(with_((c) => (c.tuzhan = { token: 'SECRET-TOKEN-1${' }))),
    ];
    expect(lines.length).toBeGreaterThanOrEqual(7);
    for (const line of lines) for (const s of secrets) expect(line).not.toContain(s);
  });
});

describe('parseTableName', () => {
  it.each([
    ['crm.customer_profile', 'crm', 'customer_profile'],
    ['CRM.Customer', 'crm', 'customer'],
    ['"Crm"."Member Group"', 'Crm', 'Member Group'],
    ['crm."select"', 'crm', 'select'],
    ['客户.分组', '客户', '分组'],
    ['"a""b".c$1', 'a"b', 'c$1'],
    [' crm . "x.y" ', 'crm', 'x.y'],
  ])('%s', (input, schema, table) => {
    expect(parseTableName(input)).toEqual({ schema, table });
  });

  it.each([
    ['customer', 'has no schema'],
    ['db.crm.customer', 'too many parts'],
    ['crm."open', 'unterminated quoted identifier'],
    ['crm.""', 'zero-length quoted identifier'],
    ['crm.1abc', 'invalid unquoted name "1abc"'],
    ['crm.member group', 'unexpected text after "crm.member"'],
    [`crm.${'x'.repeat(64)}`, 'longer than 63 bytes'],
  ])('rejects %s', (input, message) => {
    expect(() => parseTableName(input)).toThrow(ConfigError);
    expect(() => parseTableName(input)).toThrow(message);
  });
});
