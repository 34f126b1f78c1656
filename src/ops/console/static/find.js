// Find a customer: by source key or by an identity the bridge sent.
import { api, showError } from './api.js';
import { $, dl, el, fill, json, num, pill, timeEl } from './dom.js';

function renderRequest(r, row) {
  if (!r)
    return el(
      'p',
      { className: 'muted' },
      row.status === 'retrying'
        ? 'no answer yet: the bridge is retrying the request'
        : 'no request recorded with this outcome (decided before sending, or older than the request log)',
    );
  return dl([
    ['request', `#${r.id} (${r.optType}, ${num(r.rows)} rows)`],
    ['sent', timeEl(r.startedAt)],
    ['took', r.durationMs === null ? '–' : `${num(r.durationMs)} ms`],
    ['HTTP', r.httpStatus ?? 'no answer'],
    ['code / msg', `${r.code ?? '–'} ${r.msg ?? ''}`],
    ['data.status', r.apiStatus ?? '–'],
    ['imported / failed', `${num(r.successNum)} / ${num(r.failNum)}`],
  ]);
}

// Identities without an index are not searched (the console reads no whole table): say so.
function notIndexedNote(res) {
  const missing = res.identities?.notIndexed ?? [];
  if (res.query.startsWith('{') || missing.length === 0) return '';
  return el(
    'p',
    { className: 'muted not-indexed' },
    `Not searched by ${missing.join(', ')}: no index on them yet (docs/console.md, "Finding a customer by identity").`,
  );
}

function renderFind(res) {
  const out = $('find-results');
  if (res.rows.length === 0) {
    fill(out, el('p', { className: 'muted' }, 'Nothing found by that key or identity.'), notIndexedNote(res));
    return;
  }
  fill(
    out,
    el(
      'p',
      { className: 'muted' },
      `${res.rows.length}${res.more ? '+' : ''} row${res.rows.length === 1 && !res.more ? '' : 's'}`,
    ),
    notIndexedNote(res),
    res.rows.map((row) =>
      el(
        'div',
        { className: 'card result', dataset: { source: row.source, status: row.status } },
        el(
          'div',
          { className: 'head' },
          el('strong', {}, row.source),
          el('code', { className: 'row-key' }, JSON.stringify(row.rowKey)),
          pill(row.status),
          el(
            'span',
            { className: 'muted' },
            `${row.op}, ${row.attempts} attempt${row.attempts === 1 ? '' : 's'}, matched by ${row.matchedBy.join(', ') || '–'}`,
          ),
        ),
        row.error ? el('p', { className: 'error row-error' }, row.error) : '',
        el(
          'div',
          { className: 'cols' },
          el(
            'div',
            {},
            el('h3', {}, 'Latest change'),
            dl([
              ['committed', timeEl(row.committedAt)],
              ['outcome stored', timeEl(row.syncedAt)],
              ['lsn', row.lsn ?? '–'],
            ]),
          ),
          el('div', { className: 'payload' }, el('h3', {}, 'Payload sent'), json(row.payload)),
          el('div', {}, el('h3', {}, 'Request'), renderRequest(row.request, row)),
        ),
      ),
    ),
  );
}

export async function find(q, source) {
  fill($('find-results'), el('p', { className: 'muted' }, 'searching…'));
  try {
    const params = new URLSearchParams({ q });
    if (source) params.set('source', source);
    renderFind(await api(`search?${params}`));
  } catch (err) {
    showError($('find-results'), err);
  }
}

$('find-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const params = new URLSearchParams({ q: $('find-q').value.trim() });
  if ($('find-source').value) params.set('source', $('find-source').value);
  location.hash = `#/find?${params}`;
});
