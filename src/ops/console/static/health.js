// The header's health pill and "updated" time, on every page: from /console/api/health (the
// bridge's readiness, no query), and from each overview the page loads.
import { api, Unauthorized } from './api.js';
import { $, clock } from './dom.js';

export function showHealth(bridge, generatedAt) {
  const pill = $('health');
  pill.textContent = bridge.ready === null ? 'no bridge' : bridge.ready ? 'ready' : 'not ready';
  pill.className = `pill ${bridge.ready ? 'ok' : 'bad'}`;
  pill.title = JSON.stringify(bridge.checks ?? {});
  $('updated').textContent = `updated ${clock(generatedAt)}`;
  $('updated').title = new Date(generatedAt).toString();
}

export async function refreshHealth() {
  try {
    const h = await api('health');
    showHealth({ ready: h.ready, checks: h.checks }, h.generatedAt);
  } catch (err) {
    // The page's own request asks for the token; anything else shows on the pill.
    if (err instanceof Unauthorized) return;
    $('health').textContent = 'unreachable';
    $('health').className = 'pill bad';
    $('health').title = err.message;
  }
}
