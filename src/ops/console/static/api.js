// The console's JSON API (docs/console.md), with the token of this tab (sessionStorage) as a Bearer
// header: no cookie, so the browser never sends it on its own.
import { $, el, fill } from './dom.js';

export const TOKEN_KEY = 'tuzhan-cdc-console-token';

export class Unauthorized extends Error {}

export async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`api/${path}`, {
    method: options.method ?? 'GET',
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    credentials: 'omit',
    cache: 'no-store',
  });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) throw new Unauthorized(body.error ?? 'a token is required');
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

export function showError(container, err) {
  if (err instanceof Unauthorized) return askToken(err.message);
  fill(container, el('p', { className: 'error', role: 'alert' }, err.message));
}

export function askToken(message) {
  $('login').hidden = false;
  document.querySelector('main').hidden = true;
  $('login-error').textContent = sessionStorage.getItem(TOKEN_KEY) ? message : '';
}
