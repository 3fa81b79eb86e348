// The admin UI shell: a hash router, the navigation, polling, and the token dialog.
//
// Each page module exports `title` and `mount(root, params)`, which builds the page into `root`
// and returns `{refresh}`: an async function the shell calls at once and then every POLL_MS
// while the tab is visible, so a page left open stays true.

import { allowTokenPrompt, onTokenNeeded } from './api.js';
import { h, notice } from './dom.js';
import * as active from './pages/active.js';
import * as audit from './pages/audit.js';
import * as dlq from './pages/dlq.js';
import * as overview from './pages/overview.js';
import * as queues from './pages/queues.js';
import * as recurring from './pages/recurring.js';
import * as roles from './pages/roles.js';
import * as scheduled from './pages/scheduled.js';
import * as submit from './pages/submit.js';
import * as task from './pages/task.js';
import * as tasks from './pages/tasks.js';
import * as workflow from './pages/workflow.js';
import * as workflows from './pages/workflows.js';

const POLL_MS = 2000;

const ROUTES = [
  { path: '', page: overview, nav: 'Overview' },
  { path: 'tasks', page: tasks, nav: 'Tasks' },
  { path: 'task/:id', page: task },
  { path: 'active', page: active, nav: 'Active' },
  { path: 'scheduled', page: scheduled, nav: 'Scheduled' },
  { path: 'dlq', page: dlq, nav: 'Dead letters' },
  { path: 'queues', page: queues, nav: 'Queues' },
  { path: 'roles', page: roles, nav: 'Roles' },
  { path: 'recurring', page: recurring, nav: 'Recurring' },
  { path: 'workflows', page: workflows, nav: 'Workflows' },
  { path: 'workflow/:id', page: workflow },
  { path: 'audit', page: audit, nav: 'Audit' },
  { path: 'submit', page: submit, nav: 'Submit' },
];

const root = document.getElementById('page');
const sync = document.getElementById('sync');
let current = null; // {route, refresh}
let busy = false;

/** '#/task/ABC?x=1' -> {route, params: {id: 'ABC'}, query: URLSearchParams} */
function resolve(hash) {
  const [path, search] = hash.replace(/^#\/?/, '').split('?');
  const parts = path.split('/').filter(Boolean);
  for (const route of ROUTES) {
    const pattern = route.path.split('/').filter(Boolean);
    if (pattern.length !== parts.length) continue;
    const params = {};
    const matches = pattern.every((p, i) => {
      if (!p.startsWith(':')) return p === parts[i];
      try {
        params[p.slice(1)] = decodeURIComponent(parts[i]);
        return true;
      } catch {
        return false; // a malformed %-escape: no such page
      }
    });
    if (matches) return { route, params, query: new URLSearchParams(search || '') };
  }
  return null;
}

function renderNav(active) {
  document.getElementById('nav').replaceChildren(...ROUTES.filter((r) => r.nav).map((r) => h('a', {
    href: `#/${r.path}`,
    class: r === active ? 'active' : null,
    'aria-current': r === active ? 'page' : null,
  }, r.nav)));
}

function showSync(error) {
  if (error) {
    sync.className = 'sync error';
    const retry = error.status === 401
      ? h('button', { type: 'button', class: 'link', onclick: () => { allowTokenPrompt(); poll(); } }, 'Enter token')
      : null;
    sync.replaceChildren(error.message, ' ', retry);
  } else {
    sync.className = document.hidden ? 'sync paused' : 'sync';
    sync.replaceChildren(document.hidden ? 'Paused' : `Live · ${new Date().toLocaleTimeString()}`);
  }
}

async function poll() {
  if (!current || busy || document.hidden) return;
  busy = true;
  const mine = current;
  try {
    await mine.refresh();
    if (mine === current) showSync(null);
  } catch (err) {
    if (mine === current) showSync(err);
  } finally {
    busy = false;
  }
}

function navigate() {
  const found = resolve(location.hash);
  if (!found) {
    renderNav(null);
    root.replaceChildren(h('h1', {}, 'Not found'), notice('error', 'No such page. ', h('a', { href: '#/' }, 'Overview')));
    current = null;
    return;
  }
  renderNav(found.route.nav ? found.route : null);
  document.title = `${found.route.page.title} · Jobbers`;
  const container = h('div', { class: 'page', dataset: { page: found.route.path || 'overview' } });
  root.replaceChildren(container);
  const mounted = found.route.page.mount(container, { ...found.params, query: found.query });
  current = { route: found.route, refresh: mounted.refresh };
  busy = false;
  poll();
}

// -- the token dialog ----------------------------------------------------------------------------

const dialog = document.getElementById('token-dialog');
const tokenInput = document.getElementById('token-input');
const tokenError = document.getElementById('token-error');

onTokenNeeded((message) => new Promise((resolveToken) => {
  tokenError.textContent = message;
  tokenInput.value = '';
  dialog.addEventListener('close', () => {
    const token = dialog.returnValue === 'ok' ? tokenInput.value.trim() : '';
    resolveToken(token || null);
  }, { once: true });
  dialog.returnValue = '';
  dialog.showModal();
  tokenInput.focus();
}));

document.getElementById('token-cancel').addEventListener('click', () => dialog.close(''));

window.addEventListener('hashchange', navigate);
document.addEventListener('visibilitychange', () => { showSync(null); poll(); });
setInterval(poll, POLL_MS);
navigate();
