// The overview page: per source counts, backlog, requests; the slot, snapshot and backfills.
import { api, showError } from './api.js';
import { $, ago, bar, bytes, dl, duration, el, fill, num, table, time } from './dom.js';

const STATUSES = ['synced', 'failed', 'retrying', 'accepted', 'skipped'];

let sourcesFilled = false;
/** Whether the source lists of the other pages are filled (by the first overview). */
export const haveSources = () => sourcesFilled;
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

export async function loadOverview() {
  try {
    renderOverview(await api('overview'));
  } catch (err) {
    showError($('page-overview'), err);
  }
}
