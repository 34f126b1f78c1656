// Held rows on the overview: mass removals the bridge's guard holds for a person (docs/console.md),
// a card saying whether anything is held, and per source and reason a row with Approve and Reject,
// which do what `tuzhan-cdc held --approve | --reject` does, in the bridge.
import { api, showError } from './api.js';
import { $, card, el, num, table, timeEl } from './dom.js';

const total = (o) => (o.held ?? []).reduce((n, h) => n + h.rows, 0);

/** What the last approval or rejection from this page did, shown on the card until the next. */
let last = null;

/** The card at the top: nothing held, or how many rows of which sources wait for a person. */
export function heldCard(o) {
  const rows = total(o);
  const sources = [...new Set((o.held ?? []).map((h) => h.source))];
  return card(
    'card-held',
    'Held for a person',
    rows === 0
      ? el('p', { className: 'ok', dataset: { held: '0' } }, 'nothing held')
      : el(
          'p',
          { className: 'bad', dataset: { held: String(rows) } },
          `${num(rows)} row${rows === 1 ? '' : 's'} of ${sources.join(', ')}: a mass removal waits for you (below)`,
        ),
    el(
      'p',
      { id: 'held-result', role: 'status', className: last?.ok === false ? 'bad' : 'muted' },
      last?.text ?? '',
    ),
  );
}

/** The section: what is held, and the two buttons per source. */
export function heldSection(o, reload) {
  if (!o.held?.length) return '';
  const bySource = new Map();
  for (const h of o.held) bySource.set(h.source, (bySource.get(h.source) ?? 0) + h.rows);
  return [
    el('h2', { id: 'held' }, 'Held: mass removals waiting for a person'),
    el(
      'p',
      { className: 'muted text' },
      'Approve brings the held rows to what the table holds now (rows restored meanwhile keep their groups); reject leaves the platform as it is.',
    ),
    table(
      ['source', { label: 'rows', num: true }, 'held since', 'reason', ''],
      o.held.map((h) =>
        el(
          'tr',
          { dataset: { heldSource: h.source } },
          el('td', {}, h.source),
          el('td', { className: 'num' }, num(h.rows)),
          el('td', {}, timeEl(h.since)),
          el('td', { className: 'text' }, h.reason),
          el(
            'td',
            {},
            ...['approve', 'reject'].map((action) =>
              el(
                'button',
                {
                  type: 'button',
                  className: action,
                  onclick: (e) => settle(action, h.source, bySource.get(h.source), e.target, reload),
                },
                action === 'approve' ? 'Approve' : 'Reject',
              ),
            ),
          ),
        ),
      ),
    ),
  ];
}

const QUESTION = {
  approve: (source, rows) =>
    `Approve the ${num(rows)} held rows of ${source}? What the table no longer holds is removed from the platform now.`,
  reject: (source, rows) =>
    `Reject the ${num(rows)} held rows of ${source}? The platform keeps their groups; the rows are recorded skipped.`,
};

async function settle(action, source, rows, button, reload) {
  if (!confirm(QUESTION[action](source, rows))) return;
  button.disabled = true;
  try {
    await api('held', { method: 'POST', body: { source, action } });
    // It runs in the bridge; follow it until it is done, then show the overview again.
    for (let i = 0; i < 1200; i++) {
      const { actions } = await api('actions');
      const mine = actions.find((a) => a.kind === action && a.source === source);
      if (mine && mine.state !== 'running') {
        last = { ok: mine.state === 'done', text: describe(mine) };
        break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    await reload();
  } catch (err) {
    showError($('held-result'), err);
  } finally {
    button.disabled = false;
  }
}

/** One line saying what an approval or a rejection did. */
export function describe(a) {
  if (a.state === 'failed') return `${a.kind} of ${a.source} failed: ${a.message ?? ''}`;
  const r = a.result ?? { rows: 0, sent: {}, outcomes: {} };
  if (a.kind === 'reject')
    return `${a.source}: rejected ${num(r.rows)} held rows; the platform keeps their groups`;
  const sent = Object.entries(r.sent ?? {})
    .map(([op, n]) => `${num(n)} ${op}`)
    .join(', ');
  return `${a.source}: approved ${num(r.rows)} held rows (sent ${sent || 'nothing'})`;
}
