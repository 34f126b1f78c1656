// The console's page: plain DOM, no library, no build step. Every value from the database or the
// platform (keys, group names, error texts) reaches the page through textContent or a property,
// never as HTML: `el()` below is the only way this file creates content, and it has no HTML path.
// The API is documented in docs/console.md.

const TOKEN_KEY = 'tuzhan-cdc-console-token';
const STATUSES = ['synced', 'failed', 'retrying', 'accepted', 'skipped'];
const REFRESH_MS = 5000;

// ---- DOM helpers ---------------------------------------------------------------------------------

/** An element with properties (className, dataset, on*, other DOM properties) and children. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node[k] = v;
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
const $ = (id) => document.getElementById(id);

/** Replaces a node's children (nested lists flattened, empty parts dropped). */
function fill(node, ...children) {
  node.replaceChildren(
    ...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false && c !== ''),
  );
}
const nf = new Intl.NumberFormat('en-US');
const num = (n) => (n === null || n === undefined ? '–' : nf.format(n));

function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

function ago(isoTime) {
  if (!isoTime) return '–';
  return `${duration((Date.now() - Date.parse(isoTime)) / 1000)} ago`;
}

const time = (isoTime) => (isoTime ? new Date(isoTime).toLocaleString() : '–');
const pill = (status) => el('span', { className: `pill s-${status}` }, status);
const json = (v) => el('pre', {}, v === null || v === undefined ? '–' : JSON.stringify(v, null, 2));

function dl(pairs) {
  return el(
    'dl',
    {},
    pairs.filter(Boolean).map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]),
  );
}

function bar(done, total, label) {
  const max = Math.max(total || 0, done || 0, 1);
  return el(
    'div',
    {},
    el('progress', { max, value: done || 0, title: label }),
    el('div', { className: 'muted' }, `${num(done)} of ${total ? '~' + num(total) : '?'} rows`),
  );
}

function table(headers, rows) {
  return el(
    'table',
    {},
    el(
      'thead',
      {},
      el(
        'tr',
        {},
        headers.map((h) => el('th', { className: h.num ? 'num' : '' }, h.label ?? h)),
      ),
    ),
    el('tbody', {}, rows),
  );
}

// ---- the API -------------------------------------------------------------------------------------

class Unauthorized extends Error {}

async function api(path, options = {}) {
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

function showError(container, err) {
  if (err instanceof Unauthorized) return askToken(err.message);
  fill(container, el('p', { className: 'error', role: 'alert' }, err.message));
}

function askToken(message) {
  $('login').hidden = false;
  document.querySelector('main').hidden = true;
  $('login-error').textContent = sessionStorage.getItem(TOKEN_KEY) ? message : '';
}

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value);
  $('token').value = '';
  $('login').hidden = true;
  document.querySelector('main').hidden = false;
  route();
});

// ---- overview ------------------------------------------------------------------------------------

let sourcesFilled = false;
function fillSources(names) {
  if (sourcesFilled) return;
  sourcesFilled = true;
  for (const id of ['find-source', 'failures-source'])
    for (const n of names) $(id).append(el('option', { value: n }, n));
}

function sparkline(perMinute, minutes) {
  const blocks = '▁▂▃▄▅▆▇█';
  const byMinute = new Map(perMinute.map((p) => [Date.parse(p.minute), p.requests]));
  const now = Math.floor(Date.now() / 60000) * 60000;
  const counts = [];
  for (let i = minutes - 1; i >= 0; i--) counts.push(byMinute.get(now - i * 60000) ?? 0);
  const max = Math.max(...counts, 1);
  return counts.map((c) => (c === 0 ? '·' : blocks[Math.min(7, Math.floor((c / max) * 7.99))])).join('');
}

function renderOverview(o) {
  const page = $('page-overview');
  fillSources(o.sources.filter((s) => s.configured).map((s) => s.name));
  const health = $('health');
  const streaming = o.bridge.checks?.streaming;
  health.textContent = o.bridge.ready === null ? 'no bridge' : o.bridge.ready ? 'ready' : 'not ready';
  health.className = `pill ${o.bridge.ready ? 'ok' : 'bad'}`;
  health.title = JSON.stringify(o.bridge.checks ?? {});

  const s = o.slot;
  const cards = el(
    'div',
    { className: 'cards' },
    el(
      'div',
      { className: 'card', id: 'card-bridge' },
      el('h3', {}, 'Bridge'),
      dl([
        ['streaming', streaming === undefined ? '–' : streaming ? 'yes' : 'no'],
        ['platform', String(o.bridge.checks?.credentials ?? '–')],
        ['buffered rows', num(o.bridge.bufferedRows)],
        ['in flight', num(o.bridge.inflightRows)],
      ]),
    ),
    el(
      'div',
      { className: 'card', id: 'card-slot' },
      el('h3', {}, `Slot ${s.name}`),
      dl([
        ['state', !s.exists ? 'missing' : s.active ? 'active' : 'inactive'],
        ['lag', el('span', { dataset: { lagBytes: String(s.lagBytes ?? '') } }, bytes(s.lagBytes))],
        ['lag (time)', duration(s.lagSeconds)],
        [
          'wal_status',
          el(
            'span',
            { className: s.walStatus === 'lost' || s.walStatus === 'unreserved' ? 'bad' : '' },
            s.walStatus ?? '–',
          ),
        ],
        [
          'WAL headroom',
          s.maxSlotWalKeepSizeBytes === null
            ? 'no max_slot_wal_keep_size (unbounded)'
            : el(
                'div',
                {},
                el('progress', { max: 100, value: s.headroomPct ?? 0, title: 'headroom' }),
                `${bytes(s.safeWalSizeBytes)} of ${bytes(s.maxSlotWalKeepSizeBytes)} left`,
              ),
        ],
      ]),
    ),
    el(
      'div',
      { className: 'card', id: 'card-snapshot' },
      el('h3', {}, 'Snapshot'),
      o.snapshot
        ? dl([
            ['reason', o.snapshot.reason ?? 'first start'],
            ['started', time(o.snapshot.startedAt)],
            ['finished', o.snapshot.doneAt ? time(o.snapshot.doneAt) : 'running'],
            ['rows', num(o.snapshot.rows)],
          ])
        : el('p', { className: 'muted' }, o.ready ? 'none yet' : o.message),
    ),
  );

  const progress = o.sources.flatMap((src) =>
    src.progress.map((p) =>
      el(
        'div',
        { className: 'card' },
        el('h3', {}, `${p.kind} of ${src.name}`),
        bar(p.done, p.total, p.kind),
      ),
    ),
  );

  const sourceRows = o.sources.map((src) => {
    const r = src.requests;
    const outcomes = Object.entries(r.outcomes)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${num(n)}`)
      .join(', ');
    return el(
      'tr',
      { dataset: { source: src.name } },
      el('td', {}, src.name, src.configured ? '' : el('span', { className: 'muted' }, ' (not configured)')),
      STATUSES.map((st) =>
        el(
          'td',
          { className: `num s-${st}`, dataset: { status: st, count: String(src.counts[st]) } },
          `${!src.exact && st === 'synced' ? '≈' : ''}${num(src.counts[st])}`,
        ),
      ),
      el(
        'td',
        { className: 'num', dataset: { backlog: String(src.backlog.rows) } },
        num(src.backlog.rows),
        src.backlog.rows > 0
          ? el('div', { className: 'muted' }, `oldest ${duration(src.backlog.ageSeconds)}`)
          : '',
      ),
      el(
        'td',
        { title: time(src.lastSuccessAt) },
        src.lastSuccessAt ? ago(src.lastSuccessAt) : 'none recently',
      ),
      el(
        'td',
        { className: 'num' },
        (r.total / r.windowMinutes).toFixed(1),
        el(
          'div',
          { className: 'spark', title: `requests per minute, last ${r.windowMinutes} min` },
          sparkline(r.perMinute, r.windowMinutes),
        ),
      ),
      el('td', { className: 'text' }, outcomes || '–'),
    );
  });

  const backfills = o.backfills?.length
    ? table(
        ['#', 'source', 'reason', 'status', 'progress', 'requested', 'error'],
        o.backfills.map((b) =>
          el(
            'tr',
            { dataset: { backfill: b.id } },
            el('td', {}, b.id),
            el('td', {}, b.source),
            el('td', {}, b.reason),
            el('td', {}, b.status),
            el('td', {}, bar(b.rowsDone, b.rowsTotal, 'backfill')),
            el('td', {}, time(b.requestedAt)),
            el('td', { className: 'text' }, b.error ?? ''),
          ),
        ),
      )
    : el('p', { className: 'muted' }, 'none');

  fill(
    page,
    cards,
    progress.length ? [el('h2', {}, 'Running'), el('div', { className: 'cards' }, progress)] : '',
    el('h2', {}, 'Sources'),
    table(
      [
        'source',
        ...STATUSES.map((st) => ({ label: st, num: true })),
        { label: 'backlog', num: true },
        'last success',
        { label: 'requests/min', num: true },
        `outcomes (last ${o.sources[0]?.requests.windowMinutes ?? 15} min)`,
      ],
      sourceRows,
    ),
    o.sources.some((src) => !src.exact)
      ? el(
          'p',
          { className: 'muted' },
          '≈ synced rows estimated from the table statistics (a large table); the other counts are exact.',
        )
      : '',
    el('h2', {}, 'Backfills'),
    backfills,
  );
  $('updated').textContent = `updated ${new Date(o.generatedAt).toLocaleTimeString()}`;
}

async function loadOverview() {
  try {
    renderOverview(await api('overview'));
  } catch (err) {
    showError($('page-overview'), err);
  }
}

// ---- find a customer -----------------------------------------------------------------------------

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
    ['sent', time(r.startedAt)],
    ['took', r.durationMs === null ? '–' : `${num(r.durationMs)} ms`],
    ['HTTP', r.httpStatus ?? 'no answer'],
    ['code / msg', `${r.code ?? '–'} ${r.msg ?? ''}`],
    ['data.status', r.apiStatus ?? '–'],
    ['imported / failed', `${num(r.successNum)} / ${num(r.failNum)}`],
  ]);
}

function renderFind(res) {
  const out = $('find-results');
  if (res.rows.length === 0) {
    fill(out, el('p', { className: 'muted' }, 'Nothing found by that key or identity.'));
    return;
  }
  fill(
    out,
    el(
      'p',
      { className: 'muted' },
      `${res.rows.length}${res.more ? '+' : ''} row${res.rows.length === 1 && !res.more ? '' : 's'}`,
    ),
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
              ['committed', time(row.committedAt)],
              ['outcome stored', time(row.syncedAt)],
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

async function find(q, source) {
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

// ---- failures ------------------------------------------------------------------------------------

let failuresOffset = 0;
const PAGE = 20;

async function loadFailures() {
  const params = new URLSearchParams({ limit: String(PAGE), offset: String(failuresOffset) });
  if ($('failures-status').value) params.set('status', $('failures-status').value);
  if ($('failures-source').value) params.set('source', $('failures-source').value);
  try {
    const [res, acts] = await Promise.all([api(`failures?${params}`), api('actions')]);
    renderActions(acts.actions);
    renderGroups(res);
  } catch (err) {
    showError($('failures-results'), err);
  }
}

function renderGroups(res) {
  const out = $('failures-results');
  if (res.groups.length === 0 && res.offset === 0) {
    fill(out, el('p', { className: 'muted', id: 'no-failures' }, 'No failed or retrying rows.'));
    return;
  }
  const rows = res.groups.map((g) =>
    el(
      'tr',
      { className: 'group', dataset: { source: g.source, status: g.status, group: g.id } },
      el('td', {}, g.source),
      el('td', {}, pill(g.status)),
      el('td', { className: 'text group-error' }, g.error ?? '(no error text)'),
      el('td', { className: 'num' }, num(g.rows)),
      el('td', {}, ago(g.newestAt)),
      el(
        'td',
        {},
        el(
          'div',
          { className: 'buttons' },
          el('button', { type: 'button', onclick: () => loadGroupRows(g, null) }, 'Rows'),
          g.status === 'failed'
            ? el(
                'button',
                { type: 'button', className: 'primary retry', onclick: (e) => retry(g, e.currentTarget) },
                `Retry ${num(g.rows)}`,
              )
            : '',
          el(
            'button',
            { type: 'button', className: 'backfill', onclick: (e) => backfill(g.source, e.currentTarget) },
            `Backfill ${g.source}`,
          ),
        ),
      ),
    ),
  );
  fill(
    out,
    table(['source', 'status', 'error', { label: 'rows', num: true }, 'newest', ''], rows),
    el(
      'div',
      { className: 'buttons' },
      el(
        'button',
        {
          type: 'button',
          disabled: res.offset === 0,
          onclick: () => ((failuresOffset = Math.max(0, res.offset - PAGE)), loadFailures()),
        },
        '← newer',
      ),
      el(
        'button',
        {
          type: 'button',
          disabled: !res.more,
          onclick: () => ((failuresOffset = res.offset + PAGE), loadFailures()),
        },
        'older →',
      ),
    ),
  );
}

async function loadGroupRows(g, after) {
  const out = $('group-rows');
  const params = new URLSearchParams({ group: g.id, limit: String(PAGE) });
  if (after) params.set('after', after);
  try {
    const res = await api(`failures/rows?${params}`);
    const rows = res.rows.map((r) =>
      el(
        'tr',
        {},
        el('td', {}, el('code', {}, JSON.stringify(r.rowKey))),
        el('td', {}, r.op),
        el('td', { className: 'num' }, num(r.attempts)),
        el('td', {}, time(r.syncedAt)),
        el('td', {}, json(r.payload)),
      ),
    );
    fill(
      out,
      el('h2', {}, `${g.source}: ${g.status} rows, newest first`),
      el('p', { className: 'text muted' }, g.error ?? ''),
      table(['key', 'op', { label: 'attempts', num: true }, 'outcome stored', 'payload'], rows),
      res.next ? el('button', { type: 'button', onclick: () => loadGroupRows(g, res.next) }, 'more →') : '',
    );
  } catch (err) {
    showError(out, err);
  }
}

function renderActions(actions) {
  const out = $('actions');
  if (!actions.length) return fill(out);
  fill(
    out,
    el('h2', {}, 'Actions from this console'),
    table(
      ['#', 'action', 'state', 'result'],
      actions
        .slice(0, 5)
        .map((a) =>
          el(
            'tr',
            { className: 'action', dataset: { state: a.state, kind: a.kind } },
            el('td', {}, a.id),
            el(
              'td',
              { className: 'text' },
              a.kind === 'retry'
                ? `retry ${a.source}: ${a.error ?? '(no error text)'}`
                : `backfill ${a.source}`,
            ),
            el('td', {}, a.state),
            el('td', { className: 'text' }, describeResult(a)),
          ),
        ),
    ),
  );
}

function describeResult(a) {
  if (a.message) return a.message;
  if (!a.result) return '';
  if (a.kind === 'backfill')
    return a.result.created
      ? `backfill ${a.result.backfillId} requested`
      : `backfill ${a.result.backfillId} already running`;
  const outcomes = Object.entries(a.result.outcomes)
    .map(([k, n]) => `${num(n)} ${k}`)
    .join(', ');
  return `${num(a.result.rows)} rows retried${outcomes ? `: ${outcomes}` : ''}`;
}

async function retry(g, button) {
  button.disabled = true;
  try {
    await api('retry', { method: 'POST', body: { group: g.id } });
    // The retry runs in the bridge; follow it until it is done, then show the groups again.
    for (let i = 0; i < 600; i++) {
      const { actions } = await api('actions');
      renderActions(actions);
      if (!actions.some((a) => a.kind === 'retry' && a.state === 'running')) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    await loadFailures();
  } catch (err) {
    showError($('actions'), err);
  } finally {
    button.disabled = false;
  }
}

async function backfill(source, button) {
  if (!confirm(`Re-send every current row of ${source} to the platform (a backfill)?`)) return;
  button.disabled = true;
  try {
    await api('backfill', { method: 'POST', body: { source } });
    renderActions((await api('actions')).actions);
  } catch (err) {
    showError($('actions'), err);
  } finally {
    button.disabled = false;
  }
}

$('failures-form').addEventListener('submit', (e) => {
  e.preventDefault();
  failuresOffset = 0;
  fill($('group-rows'));
  loadFailures();
});

// ---- routing and refresh -------------------------------------------------------------------------

function current() {
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  return {
    page: ['overview', 'find', 'failures'].includes(path) ? path : 'overview',
    query: new URLSearchParams(query ?? ''),
  };
}

function route() {
  const { page, query } = current();
  for (const s of document.querySelectorAll('[data-page]')) s.hidden = s.dataset.page !== page;
  for (const a of document.querySelectorAll('[data-tab]'))
    a.classList.toggle('active', a.dataset.tab === page);
  if (page === 'overview') loadOverview();
  if (page === 'failures') loadFailures();
  if (page === 'find') {
    if (!sourcesFilled) loadOverview();
    const q = query.get('q');
    if (q) {
      $('find-q').value = q;
      $('find-source').value = query.get('source') ?? '';
      find(q, query.get('source'));
    }
  }
}

window.addEventListener('hashchange', route);
setInterval(() => {
  if (!$('auto').checked || document.hidden || !$('login').hidden) return;
  const { page } = current();
  if (page === 'overview') loadOverview();
}, REFRESH_MS);
route();
