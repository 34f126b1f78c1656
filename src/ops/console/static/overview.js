// The overview page: the bridge, the slot and the snapshot as cards; per source counts, backlog,
// requests; running syncs and the latest backfills. Each card, each column of the sources table
// and each section is one entry of CARDS, SOURCE_COLUMNS or SECTIONS below: a new figure (held
// rows, the learned request rate) is a function added to one of them.
import { api, showError } from './api.js';
import { activityChart } from './chart.js';
import { $, ago, bar, bytes, card, dl, duration, el, fill, num, table, time, timeEl } from './dom.js';
import { showHealth } from './health.js';
import { heldCard, heldSection } from './held.js';

const STATUSES = ['synced', 'failed', 'retrying', 'accepted', 'skipped', 'held'];

let sourcesFilled = false;
/** Whether the source lists of the other pages are filled (by the first overview). */
export const haveSources = () => sourcesFilled;
function fillSources(names) {
  if (sourcesFilled) return;
  sourcesFilled = true;
  for (const id of ['find-source', 'failures-source'])
    for (const n of names) $(id).append(el('option', { value: n }, n));
}

/** The cards at the top, in order; each takes the overview (GET /console/api/overview). */
const CARDS = [
  (o) => {
    const streaming = o.bridge.checks?.streaming;
    return card(
      'card-bridge',
      'Bridge',
      dl([
        ['streaming', streaming === undefined ? '–' : streaming ? 'yes' : 'no'],
        ['platform', String(o.bridge.checks?.credentials ?? '–')],
        ['buffered rows', num(o.bridge.bufferedRows)],
        ['in flight', num(o.bridge.inflightRows)],
      ]),
    );
  },
  (o) => {
    const s = o.slot;
    const risky = s.walStatus === 'lost' || s.walStatus === 'unreserved';
    return card(
      'card-slot',
      `Slot ${s.name}`,
      dl([
        ['state', !s.exists ? 'missing' : s.active ? 'active' : 'inactive'],
        ['lag', el('span', { dataset: { lagBytes: String(s.lagBytes ?? '') } }, bytes(s.lagBytes))],
        ['lag (time)', duration(s.lagSeconds)],
        ['wal_status', el('span', { className: risky ? 'bad' : '' }, s.walStatus ?? '–')],
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
    );
  },
  (o) => {
    // What the platform's answers taught the bridge (docs/operations.md, "The platform's quota").
    const r = o.bridge.requestRate ?? {};
    const perSecond = (n) => `${n < 10 ? n.toFixed(2) : n.toFixed(1)}/s`;
    return card(
      'card-rate',
      'Request rate',
      dl([
        [
          'learned rate',
          el(
            'span',
            { dataset: { rate: String(r.ratePerSecond ?? '') } },
            r.ratePerSecond == null ? 'no limit' : perSecond(r.ratePerSecond),
          ),
        ],
        ['platform quota', r.quota == null ? 'none met yet' : `≈ ${perSecond(r.quota)}`],
        ['in flight at most', num(r.concurrency)],
        ['refused (429)', num(r.refused)],
      ]),
    );
  },
  (o) =>
    card(
      'card-snapshot',
      'Snapshot',
      o.snapshot
        ? dl([
            ['reason', o.snapshot.reason ?? 'first start'],
            ['started', timeEl(o.snapshot.startedAt)],
            ['finished', o.snapshot.doneAt ? timeEl(o.snapshot.doneAt) : 'running'],
            ['rows', num(o.snapshot.rows)],
          ])
        : el('p', { className: 'muted' }, o.ready ? 'none yet' : o.message),
    ),
  heldCard,
];

/** The columns of the sources table: a header, and a cell per source (`src`, with the overview `o`). */
const SOURCE_COLUMNS = [
  {
    label: 'source',
    cell: (src) =>
      el('td', {}, src.name, src.configured ? '' : el('span', { className: 'muted' }, ' (not configured)')),
  },
  ...STATUSES.map((st) => ({
    label: st,
    num: true,
    cell: (src) =>
      el(
        'td',
        { className: `num s-${st}`, dataset: { status: st, count: String(src.counts[st]) } },
        `${!src.exact && st === 'synced' ? '≈' : ''}${num(src.counts[st])}`,
      ),
  })),
  {
    label: 'backlog',
    num: true,
    cell: (src) =>
      el(
        'td',
        { className: 'num', dataset: { backlog: String(src.backlog.rows) } },
        num(src.backlog.rows),
        src.backlog.rows > 0
          ? el('div', { className: 'muted' }, `oldest ${duration(src.backlog.ageSeconds)}`)
          : '',
      ),
  },
  {
    label: 'last success',
    cell: (src) =>
      el(
        'td',
        { title: time(src.lastSuccessAt) },
        src.lastSuccessAt ? ago(src.lastSuccessAt) : 'none recently',
      ),
  },
  {
    label: 'requests/min',
    num: true,
    cell: (src) => {
      const r = src.requests.rate;
      const over =
        r.overSeconds > 0 ? `over the last ${duration(r.overSeconds)}` : 'no request in the last 5 min';
      return el(
        'td',
        {
          className: 'num rate',
          title: `${r.requestsPerMinute.toFixed(1)} requests and ${r.rowsPerMinute.toFixed(1)} rows a minute, ${over}`,
          dataset: { rate: String(r.requestsPerMinute) },
        },
        r.requestsPerMinute.toFixed(1),
      );
    },
  },
  {
    label: (o) => `requests and rows, last ${windowOf(o)} min`,
    cell: (src, o) =>
      el(
        'td',
        { className: 'activity' },
        activityChart(src.requests.perMinute, src.requests.windowMinutes, Date.parse(o.generatedAt)),
      ),
  },
  {
    label: (o) => `outcomes (last ${windowOf(o)} min)`,
    cell: (src) =>
      el(
        'td',
        { className: 'text' },
        Object.entries(src.requests.outcomes)
          .filter(([, n]) => n > 0)
          .map(([k, n]) => `${k} ${num(n)}`)
          .join(', ') || '–',
      ),
  },
];

const windowOf = (o) => o.sources[0]?.requests.windowMinutes ?? 15;

/** The sections under the cards, in order; each returns its nodes (or nothing). */
const SECTIONS = [
  (o) => heldSection(o, loadOverview),
  (o) => {
    const running = o.sources.flatMap((src) =>
      src.progress.map((p) =>
        el(
          'div',
          { className: 'card' },
          el('h3', {}, `${p.kind} of ${src.name}`),
          bar(p.done, p.total, p.kind),
        ),
      ),
    );
    return running.length ? [el('h2', {}, 'Running'), el('div', { className: 'cards' }, running)] : '';
  },
  (o) => [
    el('h2', {}, 'Sources'),
    table(
      SOURCE_COLUMNS.map((c) => ({
        label: typeof c.label === 'function' ? c.label(o) : c.label,
        num: c.num,
      })),
      o.sources.map((src) =>
        el(
          'tr',
          { dataset: { source: src.name } },
          SOURCE_COLUMNS.map((c) => c.cell(src, o)),
        ),
      ),
    ),
    o.sources.some((src) => !src.exact)
      ? el(
          'p',
          { className: 'muted' },
          '≈ synced rows estimated from the table statistics (a large table); the other counts are exact.',
        )
      : '',
  ],
  (o) => [
    el('h2', {}, 'Backfills'),
    o.backfills?.length
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
              el('td', {}, timeEl(b.requestedAt)),
              el('td', { className: 'text' }, b.error ?? ''),
            ),
          ),
        )
      : el('p', { className: 'muted' }, 'none'),
  ],
];

function renderOverview(o) {
  fillSources(o.sources.filter((s) => s.configured).map((s) => s.name));
  showHealth(o.bridge, o.generatedAt);
  const page = $('page-overview');
  page.dataset.generatedAt = o.generatedAt;
  fill(
    page,
    el(
      'div',
      { className: 'cards' },
      CARDS.map((c) => c(o)),
    ),
    SECTIONS.map((s) => s(o)),
  );
}

export async function loadOverview() {
  try {
    renderOverview(await api('overview'));
  } catch (err) {
    showError($('page-overview'), err);
  }
}
