// Failures grouped by error, a group's rows, and the actions (retry, backfill) taken from here.
import { api, showError } from './api.js';
import { $, ago, el, fill, json, num, pill, table, timeEl } from './dom.js';
import { describe as describeHeld } from './held.js';

let failuresOffset = 0;
const PAGE = 20;

export async function loadFailures() {
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
        el('td', {}, timeEl(r.syncedAt)),
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
                : `${a.kind} ${a.source}`,
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
  if (a.kind === 'approve' || a.kind === 'reject') return describeHeld(a);
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
  const what = `${num(g.rows)} failed row${g.rows === 1 ? '' : 's'} of ${g.source}`;
  const error = g.error ?? '(no error text)';
  if (!confirm(`Send the ${what} with the error "${error}" to the platform again?`)) return;
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
