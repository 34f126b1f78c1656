// DOM helpers of the console's page. `el()` and `fill()` are the only ways the page creates content:
// strings become text nodes, never HTML, so what the database holds is shown as it is.

/** An element with properties (className, dataset, on*, other DOM properties) and children. */
export function el(tag, props = {}, ...children) {
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
export const $ = (id) => document.getElementById(id);

/** Replaces a node's children (nested lists flattened, empty parts dropped). */
export function fill(node, ...children) {
  node.replaceChildren(
    ...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false && c !== ''),
  );
}
const nf = new Intl.NumberFormat('en-US');
export const num = (n) => (n === null || n === undefined ? '–' : nf.format(n));

export function bytes(n) {
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

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

export function ago(isoTime) {
  if (!isoTime) return '–';
  return `${duration((Date.now() - Date.parse(isoTime)) / 1000)} ago`;
}

// Times in UTC, as `tuzhan-cdc status` and the log print them, saying so; the browser's own zone
// is in the tooltip (`timeEl`).
const utc = (isoTime) => new Date(isoTime).toISOString().replace('T', ' ').slice(0, 19);
export const time = (isoTime) => (isoTime ? `${utc(isoTime)} UTC` : '–');
export const clock = (isoTime) => `${utc(isoTime).slice(11)} UTC`;
/** A time as text in UTC, with the browser's local time as its tooltip. */
export const timeEl = (isoTime) =>
  el('time', isoTime ? { dateTime: isoTime, title: new Date(isoTime).toString() } : {}, time(isoTime));
/** A card of the overview: an id, a title, and what it shows. */
export const card = (id, title, ...body) =>
  el('div', { className: 'card', id }, el('h3', {}, title), ...body);

export const pill = (status) => el('span', { className: `pill s-${status}` }, status);
export const json = (v) => el('pre', {}, v === null || v === undefined ? '–' : JSON.stringify(v, null, 2));

export function dl(pairs) {
  return el(
    'dl',
    {},
    pairs.filter(Boolean).map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]),
  );
}

export function bar(done, total, label) {
  const max = Math.max(total || 0, done || 0, 1);
  return el(
    'div',
    {},
    el('progress', { max, value: done || 0, title: label }),
    el('div', { className: 'muted' }, `${num(done)} of ${total ? '~' + num(total) : '?'} rows`),
  );
}

export function table(headers, rows) {
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
