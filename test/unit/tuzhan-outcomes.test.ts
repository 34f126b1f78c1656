import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildBody,
  classifyResponse,
  cleanRow,
  hasIdentity,
  mapErrorData,
  normalizeGroups,
  outcomesOf,
  parseRetryAfter,
  redact,
} from '../../src/tuzhan/outcomes.js';
import { tokenLifeMs } from '../../src/tuzhan/token-manager.js';
import type { ApiRow, PublicParams } from '../../src/tuzhan/types.js';

describe('buildBody', () => {
  it('omits null, "" and absent identities and empty groups, never sending null or ""', () => {
    const rows = [
      { thirdId: 'c1', phone: '', openid: null, unionid: undefined, groups: 'a, b,,' },
      { phone: '138', groups: '' },
      { thirdId: 'c3', groups: ' , ' },
    ] as unknown as ApiRow[];
    const body = buildBody({ isMatching: false, optType: 'add', identifyWay: undefined }, rows);
    expect(body).toEqual({
      publicParams: { isMatching: false, optType: 'add' },
      data: [{ thirdId: 'c1', groups: 'a,b' }, { phone: '138' }, { thirdId: 'c3' }],
    });
    expect(JSON.stringify(body)).not.toMatch(/null|""/);
  });

  it('keeps identityType and all identities for exact matching', () => {
    const body = buildBody(
      {
        isMatching: true,
        matchingType: 1,
        accurateMatchType: 'gzh',
        accurateMatchValue: 'wx1',
        optType: 'update',
      },
      [{ identityType: 'openid', openid: 'o1', unionid: 'u1', groups: 'g' }],
    );
    expect(body.data).toEqual([{ identityType: 'openid', openid: 'o1', unionid: 'u1', groups: 'g' }]);
    expect(body.publicParams.optType).toBe('update');
  });
});

describe('cleanRow', () => {
  /** The wire form by the rules above: fields in a fixed order, blank ones left out, groups normalized. */
  const reference = (row: Record<string, unknown>): string => {
    const out: Record<string, string> = {};
    const text = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v : undefined);
    if (text(row.identityType) !== undefined) out.identityType = (row.identityType as string).trim();
    for (const f of ['thirdId', 'openid', 'unionid', 'phone'])
      if (text(row[f]) !== undefined) out[f] = row[f] as string;
    if (typeof row.groups === 'string') {
      const names = row.groups
        .split(',')
        .map((g) => g.trim())
        .filter((g) => g !== '');
      if (names.length) out.groups = names.join(',');
    }
    return JSON.stringify(out);
  };

  it('writes every row as the rules say, whatever order and blanks it comes with (clean rows as they are)', () => {
    const field = fc.constantFrom('identityType', 'thirdId', 'openid', 'unionid', 'phone', 'groups');
    const value = fc.constantFrom('', ' ', 'c1', ' c1', 'c1 ', 'a,b', 'a, b', 'a,,b', ',a', 'a,', 'phone');
    fc.assert(
      fc.property(fc.array(fc.tuple(field, value), { maxLength: 7 }), (pairs) => {
        const row: Record<string, unknown> = {};
        for (const [f, v] of pairs) row[f] = v;
        expect(JSON.stringify(cleanRow(row as ApiRow))).toBe(reference(row));
      }),
      { numRuns: 500 },
    );
    // Rows in the clean order with one blank or untrimmed field.
    for (const row of [
      { identityType: '', thirdId: 'c1' },
      { identityType: 'thirdId ', thirdId: 'c1' },
      { thirdId: ' ', phone: '138' },
      { thirdId: 'c1', groups: '' },
      { thirdId: 'c1', groups: 'a ,b' },
    ])
      expect(JSON.stringify(cleanRow(row as ApiRow))).toBe(reference(row));
  });
});

describe('buildBody: nothing empty on the wire', () => {
  /** What the platform receives. */
  const wire = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown;

  it('a blank or non-finite identity is absent; groups that are not text carry no group', () => {
    // SPEC section 2: omit absent fields, never send null or "" for an identity (blank is empty).
    const rows = [
      {
        identityType: ' ',
        thirdId: ' \t ',
        phone: Number.NaN,
        unionid: Infinity,
        openid: 'o1',
        groups: ['a'],
      },
    ] as unknown as ApiRow[];
    expect(wire(buildBody({ isMatching: false, optType: 'add' }, rows).data)).toEqual([{ openid: 'o1' }]);
  });

  it('publicParams without null or "" members', () => {
    const params = {
      isMatching: true,
      matchingType: 1,
      accurateMatchType: null,
      accurateMatchValue: '',
      optType: 'delete',
    } as unknown as PublicParams;
    expect(wire(buildBody(params, []).publicParams)).toEqual({
      isMatching: true,
      matchingType: 1,
      optType: 'delete',
    });
  });

  it('hasIdentity: at least one identity value', () => {
    expect(hasIdentity({ groups: 'g' })).toBe(false);
    expect(hasIdentity({})).toBe(false);
    expect(hasIdentity({ unionid: 'u1', groups: 'g' })).toBe(true);
    expect(hasIdentity({ thirdId: 'c1', phone: '138' })).toBe(true);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  it.each([
    ['1', 1000],
    ['0', 0],
    ['2.5', 2500],
    ['1.25', 1250],
    [' 30 ', 30_000],
    ['Wed, 01 Jan 2025 00:00:10 GMT', 10_000],
    ['Tue, 31 Dec 2024 23:00:00 GMT', 0],
    ['soon', undefined],
    // Neither delay-seconds nor an HTTP-date (RFC 9110 section 10.2.3).
    ['x5', undefined],
    ['5x', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('%s -> %s ms', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
  it('takes the first of repeated headers', () => {
    expect(parseRetryAfter(['3', '9'], now)).toBe(3000);
  });
});

describe('classifyResponse', () => {
  const ok = (status: number) => ({ code: '200', errorCode: 'SUCCESS', msg: 'ok', data: { status } });
  it.each([
    [200, ok(1), 'result'],
    [201, ok(2), 'result'],
    [200, ok(0), 'result'],
    [500, undefined, 'unavailable'],
    [502, ok(1), 'unavailable'],
    [503, { code: '503' }, 'unavailable'],
    [408, undefined, 'unavailable'],
    [425, undefined, 'unavailable'],
    [429, { code: '429' }, 'unavailable'],
    [404, { code: '404' }, 'unavailable'],
    [200, undefined, 'unavailable'],
    [200, { code: '200', data: null }, 'unavailable'],
    [200, { code: '200', data: { message: 'no status' } }, 'unavailable'],
    [200, { code: '200', data: { status: 'soon' } }, 'unavailable'],
    [200, { code: '100200', msg: 'expired' }, 'token-expired'],
    [401, undefined, 'token-expired'],
    [401, { code: '100200' }, 'token-expired'],
    [200, { code: '100100' }, 'auth'],
    [200, { code: '100300' }, 'auth'],
    [403, undefined, 'auth'],
    [400, { code: '400', msg: 'data[0].phone' }, 'rejected'],
    [400, undefined, 'rejected'],
    [413, undefined, 'rejected'],
    [200, { code: '500123', msg: 'bad' }, 'rejected'],
  ])('HTTP %i %j -> %s', (http, body, kind) => {
    expect(classifyResponse(http, body as never).kind).toBe(kind);
  });
  it('carries Retry-After of transient answers', () => {
    expect(classifyResponse(429, undefined, 1000)).toMatchObject({ kind: 'unavailable', retryAfterMs: 1000 });
  });
  it.each([101, 199, 300, 302, 304])('HTTP %i is never a result, whatever its body says', (http) => {
    expect(classifyResponse(http, ok(1)).kind).not.toBe('result');
  });
  it('says in the reason what came back: HTTP status, code and message', () => {
    expect(classifyResponse(502, undefined)).toMatchObject({ kind: 'unavailable', reason: 'HTTP 502' });
    const auth = classifyResponse(200, { code: '100100', msg: 'wrong appid' });
    expect(auth).toMatchObject({ kind: 'auth', reason: expect.stringContaining('100100') });
    expect(auth).toMatchObject({ reason: expect.stringContaining('wrong appid') });
    expect(auth).toMatchObject({ reason: expect.stringContaining('200') });
    // Why a 2xx is retried, and what to fix on a 404.
    expect(classifyResponse(200, undefined)).toMatchObject({ reason: expect.stringMatching(/JSON/) });
    expect(classifyResponse(200, { code: '200', data: {} } as never)).toMatchObject({
      reason: expect.stringContaining('data.status'),
    });
    const notFound = classifyResponse(404, undefined);
    expect(notFound).toMatchObject({ reason: expect.stringContaining('tuzhan.baseUrl') });
    expect(notFound).toMatchObject({ reason: expect.stringContaining('tuzhan.batchAddPath') });
  });
  it('accepts a numeric code', () => {
    expect(classifyResponse(200, { code: 200 as never, data: { status: 1 } }).kind).toBe('result');
  });
});

describe('mapErrorData', () => {
  const rows: ApiRow[] = [
    { thirdId: 'c1', phone: '111', groups: 'a' },
    { thirdId: 'c2', phone: '222', groups: 'a' },
    { openid: 'o3', groups: 'b' },
    { thirdId: 'c4', groups: 'x' },
    { thirdId: 'c4', groups: 'y' },
  ];
  const statuses = (o: ReturnType<typeof mapErrorData>) =>
    o.map((x) => (x.status === 'failed' ? x.error : x.status));

  it('maps reordered entries with extra fields and per-row messages', () => {
    const out = mapErrorData(
      rows,
      [
        { openid: 'o3', groups: 'b', errorMsg: 'no customer', importTime: 123 },
        { groups: 'a', phone: '222', thirdId: 'c2', extra: true },
      ],
      'fallback',
    );
    expect(statuses(out)).toEqual(['synced', 'fallback', 'no customer', 'synced', 'synced']);
  });

  it('maps entries echoing fewer fields', () => {
    const out = mapErrorData(rows, [{ phone: '111' }], 'partly');
    expect(statuses(out)).toEqual(['partly', 'synced', 'synced', 'synced', 'synced']);
  });

  it('uses groups to tell rows of the same identity apart, each entry claiming one row', () => {
    expect(statuses(mapErrorData(rows, [{ thirdId: 'c4', groups: 'y' }], 'f'))).toEqual([
      'synced',
      'synced',
      'synced',
      'synced',
      'f',
    ]);
    expect(statuses(mapErrorData(rows, [{ thirdId: 'c4' }, { thirdId: 'c4' }], 'f')).slice(3)).toEqual([
      'f',
      'f',
    ]);
  });

  it('never matches a row whose shared identity differs', () => {
    const out = mapErrorData(rows, [{ thirdId: 'c1', phone: '999' }], 'f');
    expect(out.every((o) => o.status === 'synced')).toBe(true);
  });

  it('survives entries that match nothing or are not objects, and warns', () => {
    const warnings: unknown[] = [];
    const logger = { warn: (o: unknown) => warnings.push(o) } as never;
    const out = mapErrorData(rows, [{ thirdId: 'nobody' }, null, 'junk', { groups: 'a' }], 'f', logger);
    expect(out.every((o) => o.status === 'synced')).toBe(true);
    expect(warnings).toEqual([expect.objectContaining({ unmatched: 4 })]);
  });

  it("a blank per-row message is no message: the answer's message is used", () => {
    expect(mapErrorData(rows, [{ thirdId: 'c1', errorMsg: '  ' }], 'f')[0]).toEqual({
      status: 'failed',
      error: 'f',
    });
  });

  it('maps echoes with spaces around identities, or an identity the sent row lacked', () => {
    expect(statuses(mapErrorData(rows, [{ thirdId: ' c2 ' }], 'f'))[1]).toBe('f');
    // The platform filled in the customer's openid: thirdId, shared by both, still matches.
    const decorated = mapErrorData([{ thirdId: 'c1', groups: 'a' }], [{ thirdId: 'c1', openid: 'o9' }], 'f');
    expect(decorated).toEqual([{ status: 'failed', error: 'f' }]);
  });

  it('compares groups as sets of names', () => {
    const c = (groups: string): ApiRow => ({ thirdId: 'c', groups });
    expect(statuses(mapErrorData([c('ab'), c('b,a')], [c('a,b')], 'f'))).toEqual(['synced', 'f']);
    expect(statuses(mapErrorData([c('ba'), c('ab')], [c('ab')], 'f'))).toEqual(['synced', 'f']);
  });

  it('warns only when an entry matches no row', () => {
    const warnings: unknown[] = [];
    const logger = { warn: (o: unknown) => warnings.push(o) } as never;
    mapErrorData(rows, [{ thirdId: 'c2' }, { openid: 'o3' }], 'f', logger);
    expect(warnings).toEqual([]);
  });

  it('compares numbers echoed for strings', () => {
    const out = mapErrorData([{ phone: '13800000000' }], [{ phone: 13800000000 }], 'f');
    expect(out[0]).toEqual({ status: 'failed', error: 'f' });
  });
});

describe('outcomesOf (SPEC section 6 table)', () => {
  const rows: ApiRow[] = [{ thirdId: 'a' }, { thirdId: 'b' }];
  it('status 1: all synced; 0: all accepted', () => {
    expect(outcomesOf(rows, 1, { status: 1 }, 'ok')).toEqual([{ status: 'synced' }, { status: 'synced' }]);
    expect(outcomesOf(rows, 0, { status: 0 }, 'ok')).toEqual([
      { status: 'accepted' },
      { status: 'accepted' },
    ]);
  });
  it('status 2 and -1 with errorData: listed rows failed with the message', () => {
    const data = { status: 2, message: '部分导入成功', errorData: [{ thirdId: 'b' }] };
    expect(outcomesOf(rows, 2, data, 'ok')).toEqual([
      { status: 'synced' },
      { status: 'failed', error: '部分导入成功' },
    ]);
    expect(outcomesOf(rows, -1, { ...data, status: -1 }, 'ok')).toEqual([
      { status: 'synced' },
      { status: 'failed', error: '部分导入成功' },
    ]);
  });
  it('status -1 without errorData: all failed with the message', () => {
    expect(outcomesOf(rows, -1, { status: -1, message: 'quota', errorData: null }, 'ok')).toEqual([
      { status: 'failed', error: 'quota' },
      { status: 'failed', error: 'quota' },
    ]);
  });
  it('status 2 without errorData or an unknown status: all failed, never silently synced', () => {
    for (const s of [2, 7]) {
      expect(outcomesOf(rows, s, { status: s }, 'ok').every((o) => o.status === 'failed')).toBe(true);
    }
    // An empty errorData lists no row either; an unknown status says nothing of its errorData.
    expect(outcomesOf(rows, 2, { status: 2, errorData: [] }, 'ok').map((o) => o.status)).toEqual([
      'failed',
      'failed',
    ]);
    const unknown = outcomesOf(rows, 7, { status: 7, errorData: [{ thirdId: 'b' }] }, 'ok');
    expect(unknown.map((o) => o.status)).toEqual(['failed', 'failed']);
  });
  it('the error says why: the status when rows are not listed, a message when there is one', () => {
    const [partly] = outcomesOf(rows, 2, { status: 2, message: '部分导入成功' }, 'ok');
    expect(partly).toMatchObject({ status: 'failed', error: expect.stringContaining('部分导入成功') });
    expect(partly).toMatchObject({ error: expect.stringMatching(/\b2\b/) });
    // A blank data.message is no message: the answer's msg, else the status.
    expect(outcomesOf(rows, -1, { status: -1, message: '  ' }, 'quota')[0]).toEqual({
      status: 'failed',
      error: 'quota',
    });
    expect(outcomesOf(rows, -1, { status: -1 }, '')[0]).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/-1/),
    });
  });
});

describe('redact / tokenLifeMs', () => {
  it('removes raw and URL-encoded secrets', () => {
    expect(redact('a s3c+r/t b s3c%2Br%2Ft', ['s3c+r/t'])).toBe('a *** b ***');
  });
  it('leaves the text alone for an unset or empty secret (an unset password)', () => {
    expect(redact('value undefined, nothing secret', [undefined, ''])).toBe(
      'value undefined, nothing secret',
    );
  });
  it('reads expire as seconds of validity unless it is an epoch', () => {
    const now = 1_700_000_000_000;
    expect(tokenLifeMs(7200, now)).toBe(7_200_000);
    expect(tokenLifeMs('7200', now)).toBe(7_200_000);
    expect(tokenLifeMs(now / 1000 + 600, now)).toBe(600_000);
    expect(tokenLifeMs(now + 60_000, now)).toBe(60_000);
    expect(tokenLifeMs(undefined, now)).toBe(7_200_000);
  });
});

describe('normalizeGroups', () => {
  it('keeps normal text as it is and cleans the rest, like split-trim-join', () => {
    const reference = (text: string): string | undefined => {
      const names = text
        .split(',')
        .map((g) => g.trim())
        .filter((g) => g !== '');
      return names.length ? names.join(',') : undefined;
    };
    const text = fc
      .array(fc.constantFrom('a', 'b c', ' ', '', ',', '\t', '\n', 'vip', '老客户', '\u3000', 'x '), {
        maxLength: 12,
      })
      .map((parts) => parts.join(''));
    fc.assert(
      fc.property(text, (t) => {
        expect(normalizeGroups(t)).toBe(reference(t));
      }),
      { numRuns: 1000 },
    );
    expect(normalizeGroups('vip,north')).toBe('vip,north');
    expect(normalizeGroups(' vip,,north ,')).toBe('vip,north');
    expect(normalizeGroups(' , ')).toBeUndefined();
  });
});
