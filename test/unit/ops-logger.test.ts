import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, redactText, redactUrl, serializeError } from '../../src/ops/logger.js';
import { BridgeError } from '../../src/errors.js';

const SECRETS = [
  'tok-SECRET-1',
  'app-SECRET-2',
  'pg-SECRET-3',
  'inst-SECRET-4',
  'hdr-SECRET-5',
  'org-SECRET-6',
];

function capture(pretty = false): { logger: ReturnType<typeof createLogger>; text: () => string } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return { logger: createLogger({ level: 'debug', pretty, destination }), text: () => chunks.join('') };
}

function expectNoSecrets(text: string): void {
  for (const s of SECRETS) expect(text).not.toContain(s);
}

describe('logger redaction', () => {
  for (const pretty of [false, true]) {
    it(`keeps secrets out of ${pretty ? 'pretty' : 'JSON'} lines`, () => {
      const { logger, text } = capture(pretty);
      logger.info(
        {
          token: SECRETS[0],
          tuzhan: { appSecret: SECRETS[1], token: SECRETS[0], baseUrl: 'https://integrate.example' },
          config: {
            tuzhan: { token: SECRETS[0] },
            postgres: { url: `postgres://cdc:${SECRETS[2]}@db:5432/crm` },
          },
          url: `postgres://cdc:${SECRETS[2]}@db/crm`,
          request: {
            url: `https://h/api/open/app/getOrgAccessToken?instanceAppid=a&instanceSecrect=${SECRETS[3]}`,
          },
          headers: { 'x-token': SECRETS[4] },
          password: SECRETS[2],
          data: { orgAccessToken: SECRETS[5], orgRefreshToken: SECRETS[5] },
        },
        'startup',
      );
      const err = new BridgeError('DB', `cannot connect to postgres://cdc:${SECRETS[2]}@db/crm`, {
        cause: new Error(`GET https://h/x?token=${SECRETS[0]} failed`),
      });
      Object.assign(err, { headers: { 'x-token': SECRETS[4] }, options: { token: SECRETS[0] } });
      logger.error({ err }, 'failed');
      const out = text();
      expectNoSecrets(out);
      expect(out).toContain('startup');
      expect(out).toContain('cannot connect to postgres://cdc:***@db/crm');
      if (!pretty) {
        const first = JSON.parse(out.split('\n')[0] as string) as Record<string, unknown>;
        expect(first.url).toBe('postgres://cdc:***@db/crm');
        expect(first.token).toBe('[redacted]');
        // Non-secret fields are kept.
        expect((first.tuzhan as Record<string, unknown>).baseUrl).toBe('https://integrate.example');
      }
    });
  }

  it('writes ISO times and level names, which log collectors read without a decoder', () => {
    const { logger, text } = capture();
    logger.warn({ source: 'profiles' }, 'something to see');
    const line = JSON.parse(text().trim()) as Record<string, unknown>;
    expect(line.level).toBe('warn');
    expect(line.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(line).toMatchObject({ name: 'tuzhan-cdc', source: 'profiles', msg: 'something to see' });
    // Pretty lines (a terminal) name the level too.
    const pretty = capture(true);
    pretty.logger.error('bad');
    expect(pretty.text()).toMatch(/ERROR: bad/);
  });

  it('redactUrl removes postgres passwords and secret query parameters', () => {
    expect(redactUrl('postgresql://u:p%40ss@h:5432/db?sslmode=require')).toBe(
      'postgresql://u:***@h:5432/db?sslmode=require',
    );
    expect(redactUrl('postgres://u@h/db')).toBe('postgres://u@h/db');
    expect(redactUrl('http://h/t?instanceAppid=app&instanceSecrect=s3cr3t&token=t0k')).toBe(
      'http://h/t?instanceAppid=app&instanceSecrect=***&token=***',
    );
    expect(redactUrl('not a url password=abc')).toBe('not a url password=***');
  });

  it('redactText scrubs URLs and libpq passwords inside messages', () => {
    const text = redactText(`connect failed (postgres://a:${SECRETS[2]}@h/d) host=h password=${SECRETS[2]}`);
    expectNoSecrets(text);
  });

  it('serializeError copies only safe fields', () => {
    const err = Object.assign(new Error('boom'), {
      code: 'E1',
      config: { headers: { 'x-token': SECRETS[4] } },
    });
    const s = serializeError(err);
    expect(s).toMatchObject({ type: 'Error', message: 'boom', code: 'E1' });
    expect(JSON.stringify(s)).not.toContain(SECRETS[4]);
    expect(serializeError('plain')).toEqual({ type: 'string', message: 'plain' });
  });
});
