/**
 * The console's guards, decided from headers alone, and its page's one rule: no HTML from data.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type http from 'node:http';
import { describe, expect, it } from 'vitest';
import { isLoopbackHostHeader, refusal } from '../../src/ops/console/security.js';

function request(method: string, headers: Record<string, string>): http.IncomingMessage {
  return { method, headers } as unknown as http.IncomingMessage;
}

describe('console guards', () => {
  it('loopback host names', () => {
    for (const host of ['127.0.0.1:9464', '127.0.0.2', 'localhost:9464', 'LOCALHOST', '[::1]:9464'])
      expect(isLoopbackHostHeader(host), host).toBe(true);
    for (const host of [
      undefined,
      '',
      'evil.example',
      '127.0.0.1.evil.example:9464',
      '10.0.0.1:9464',
      '[::2]',
    ])
      expect(isLoopbackHostHeader(host), String(host)).toBe(false);
  });

  it('without a token: any loopback Host, no other', () => {
    const o = { token: undefined, api: true, action: false };
    expect(refusal(request('GET', { host: 'localhost:9464' }), o)).toBeUndefined();
    expect(refusal(request('GET', { host: 'evil.example:9464' }), o)?.status).toBe(403);
    expect(refusal(request('GET', { host: 'evil.example' }), { ...o, api: false })?.status).toBe(403);
  });

  it('same-origin browsers and plain clients pass; another site does not', () => {
    const o = { token: undefined, api: true, action: true };
    const json = { host: '127.0.0.1:9464', 'content-type': 'application/json; charset=utf-8' };
    expect(refusal(request('POST', json), o)).toBeUndefined();
    expect(
      refusal(
        request('POST', { ...json, origin: 'http://127.0.0.1:9464', 'sec-fetch-site': 'same-origin' }),
        o,
      ),
    ).toBeUndefined();
    expect(refusal(request('POST', { ...json, origin: 'https://127.0.0.1:9464' }), o)).toBeUndefined();
    expect(refusal(request('POST', { ...json, origin: 'http://127.0.0.1:9465' }), o)?.status).toBe(403);
    expect(refusal(request('POST', { ...json, origin: 'null' }), o)?.status).toBe(403);
    expect(refusal(request('POST', { ...json, 'sec-fetch-site': 'cross-site' }), o)?.status).toBe(403);
    expect(refusal(request('PUT', json), o)?.status).toBe(405);
  });

  it('with a token: a Bearer header of exactly that token, any host', () => {
    const o = { token: 's3cret', api: true, action: false };
    const host = { host: 'bridge.internal:9464' };
    expect(refusal(request('GET', host), o)?.status).toBe(401);
    expect(refusal(request('GET', { ...host, authorization: 'Bearer s3cre' }), o)?.status).toBe(401);
    expect(refusal(request('GET', { ...host, authorization: 'Basic s3cret' }), o)?.status).toBe(401);
    expect(refusal(request('GET', { ...host, authorization: 'Bearer s3cret' }), o)).toBeUndefined();
    // The page's files hold no data; the API behind them does.
    expect(refusal(request('GET', host), { ...o, api: false })).toBeUndefined();
  });

  it("the page's script builds no HTML from strings", () => {
    const dir = new URL('../../src/ops/console/static/', import.meta.url);
    const scripts = readdirSync(dir).filter((f) => f.endsWith('.js'));
    expect(scripts).toContain('dom.js');
    for (const f of scripts)
      expect(readFileSync(new URL(f, dir), 'utf8'), f).not.toMatch(
        /innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function/,
      );
  });
});
