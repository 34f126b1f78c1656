// A small chart of a source's requests (bars) and rows (line) per minute, drawn as SVG elements:
// like dom.js's `el()`, every text is a text node, never markup.
const NS = 'http://www.w3.org/2000/svg';
const STEP = 7; // px per minute
const HEIGHT = 30;

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

const hhmm = (t) => new Date(t).toISOString().slice(11, 16);

/**
 * The last `minutes` minutes up to `now` (ms): `perMinute` is the overview's list of
 * `{minute, requests, rows}`; minutes without a request are zero. Each minute's bar has a tooltip
 * with its numbers; each series is scaled to its own maximum, said in the chart's label.
 */
export function activityChart(perMinute, minutes, now) {
  const byMinute = new Map(perMinute.map((p) => [Date.parse(p.minute), p]));
  const end = Math.floor(now / 60000) * 60000;
  const points = [];
  for (let i = minutes - 1; i >= 0; i--) {
    const t = end - i * 60000;
    const p = byMinute.get(t);
    points.push({ t, requests: p?.requests ?? 0, rows: p?.rows ?? 0 });
  }
  const maxRequests = Math.max(1, ...points.map((p) => p.requests));
  const maxRows = Math.max(1, ...points.map((p) => p.rows));
  const y = (v, max) => HEIGHT - 1 - (v / max) * (HEIGHT - 3);
  const bars = points.map((p, i) =>
    svg(
      'rect',
      {
        class: 'bar',
        x: i * STEP + 1,
        y: y(p.requests, maxRequests),
        width: STEP - 2,
        height: HEIGHT - 1 - y(p.requests, maxRequests),
      },
      svg('title', {}, `${hhmm(p.t)} UTC: ${p.requests} requests, ${p.rows} rows`),
    ),
  );
  const line = svg('polyline', {
    class: 'rows',
    points: points.map((p, i) => `${i * STEP + STEP / 2},${y(p.rows, maxRows)}`).join(' '),
  });
  const label = `requests (bars, up to ${maxRequests}) and rows (line, up to ${maxRows}) per minute, ${hhmm(points[0].t)} to ${hhmm(end)} UTC`;
  return svg(
    'svg',
    {
      class: 'chart',
      width: minutes * STEP,
      height: HEIGHT,
      viewBox: `0 0 ${minutes * STEP} ${HEIGHT}`,
      role: 'img',
      'aria-label': label,
      'data-requests': points.map((p) => p.requests).join(','),
      'data-rows': points.map((p) => p.rows).join(','),
    },
    svg('title', {}, label),
    svg('line', { class: 'axis', x1: 0, x2: minutes * STEP, y1: HEIGHT - 0.5, y2: HEIGHT - 0.5 }),
    bars,
    line,
  );
}
