// The console's page: plain DOM in ES modules, no library, no build step. Every value from the
// database or the platform (keys, group names, error texts) reaches the page as text: dom.js's
// `el()` and `fill()` are the only ways the page creates content, and they have no HTML path.
// This module routes between the pages (#/overview, #/find, #/failures) and refreshes the overview;
// the API is documented in docs/console.md.
import { TOKEN_KEY } from './api.js';
import { $ } from './dom.js';
import { loadFailures } from './failures.js';
import { find } from './find.js';
import { refreshHealth } from './health.js';
import { haveSources, loadOverview } from './overview.js';

const REFRESH_MS = 5000;

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value);
  $('token').value = '';
  $('login').hidden = true;
  document.querySelector('main').hidden = false;
  route();
});

function current() {
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  return {
    page: ['overview', 'find', 'failures'].includes(path) ? path : 'overview',
    query: new URLSearchParams(query ?? ''),
  };
}

function route() {
  const { page, query } = current();
  // The overview brings the health with it; every other page asks for it alone.
  if (page !== 'overview') refreshHealth();
  for (const s of document.querySelectorAll('[data-page]')) s.hidden = s.dataset.page !== page;
  for (const a of document.querySelectorAll('[data-tab]'))
    a.classList.toggle('active', a.dataset.tab === page);
  if (page === 'overview') loadOverview();
  if (page === 'failures') loadFailures();
  if (page === 'find') {
    if (!haveSources()) loadOverview();
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
  else refreshHealth();
}, REFRESH_MS);
route();
