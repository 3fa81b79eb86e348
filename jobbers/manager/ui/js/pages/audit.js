// Audit log: every queue's events (oldest first) in a time window, filtered by correlation id, task
// name, queue and event type, a page at a time; and the counts of the same window by type and
// task name ("what did the agents do yesterday?").

import { get } from '../api.js';
import { EVENT_TYPES, eventBadge, field, h, Pager, table, taskLink, time } from '../dom.js';
import { queueSelect, taskNameList } from './shared.js';

export const title = 'Audit log';

const PAGE_SIZES = [50, 100, 250, 500];
const WINDOWS = [['1h', 'last hour', 3600], ['24h', 'last 24 hours', 86400], ['7d', 'last 7 days', 7 * 86400], ['all', 'everything kept', 0]];

/** A <input type=datetime-local> value (local time) as an ISO instant, '' when empty. */
function instant(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

export function mount(root, { query }) {
  const filters = {
    window: query.get('window') || (query.get('since') || query.get('until') ? 'custom' : '24h'),
    since: query.get('since') || '',
    until: query.get('until') || '',
    correlation_id: query.get('correlation_id') || '',
    task_name: query.get('task_name') || '',
    queue: query.get('queue') || '',
    type: query.getAll('type'),
    limit: Number(query.get('limit')) || 100,
  };
  let lastKey = '';
  const list = h('div');
  const counts = h('div', { class: 'audit-summary' });
  const pager = new Pager(() => { lastKey = ''; return refresh(); });

  const form = h('form', { class: 'filters', novalidate: true },
    field('Window', h('select', { name: 'window' },
      WINDOWS.map(([v, label]) => h('option', { value: v, selected: v === filters.window }, label)),
      h('option', { value: 'custom', selected: filters.window === 'custom' }, 'from / until below'))),
    field('From', h('input', { type: 'datetime-local', name: 'since', value: filters.since, step: 1 })),
    field('Until', h('input', { type: 'datetime-local', name: 'until', value: filters.until, step: 1 })),
    field('Correlation id', h('input', { name: 'correlation_id', value: filters.correlation_id, placeholder: 'any', maxlength: 256 })),
    field('Task name', h('input', { name: 'task_name', list: 'audit-task-names', value: filters.task_name, placeholder: 'any task' })),
    field('Queue', queueSelect('queue', filters.queue, 'any queue')),
    h('fieldset', { class: 'statuses' }, h('legend', {}, 'Type'),
      EVENT_TYPES.map((t) => h('label', { class: 'check' },
        h('input', { type: 'checkbox', name: 'type', value: t, checked: filters.type.includes(t) }), t.replaceAll('_', ' ')))),
    field('Per page', h('select', { name: 'limit' },
      PAGE_SIZES.map((n) => h('option', { value: n, selected: n === filters.limit }, String(n))))),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Apply'),
      h('a', { href: '#/audit', class: 'button' }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) params.append(k, v);
    if ((params.get('since') || params.get('until')) && params.get('window') !== 'all') params.set('window', 'custom');
    const hash = `#/audit?${params}`;
    if (hash === location.hash) { pager.reset(); lastKey = ''; refresh(); } else location.hash = hash;
  });

  root.append(h('h1', {}, 'Audit log'), form, taskNameList('audit-task-names'),
    h('section', {}, h('h2', {}, 'Summary'), counts),
    h('section', {}, h('h2', {}, 'Events'), list, pager.el));

  /** The window asked for, as ISO instants (the presets end now). */
  function span() {
    const preset = WINDOWS.find(([v]) => v === filters.window);
    if (preset) {
      return preset[2] ? { since: new Date(Date.now() - preset[2] * 1000).toISOString(), until: undefined } : {};
    }
    return { since: instant(filters.since) || undefined, until: instant(filters.until) || undefined };
  }

  async function refresh() {
    const { since, until } = span();
    const shared = {
      since, until, correlation_id: filters.correlation_id || undefined, task_name: filters.task_name || undefined,
      queue: filters.queue || undefined, type: filters.type,
    };
    // The summary's window is the day before `until` unless `since` is given ("everything kept"
    // asks from the epoch).
    const [page, summary] = await Promise.all([
      get('/audit-log', { ...shared, limit: filters.limit, cursor: pager.cursor }),
      get('/audit-log/summary', { ...shared, since: since || (filters.window === 'all' ? '1970-01-01T00:00:00Z' : undefined) }),
    ]);
    const key = JSON.stringify([page, summary.by_type, summary.by_task_name]);
    if (key === lastKey) return;
    lastKey = key;
    counts.replaceChildren(
      h('p', { class: 'muted' }, `${summary.total} event${summary.total === 1 ? '' : 's'} from `, time(summary.since), ' until ', time(summary.until)),
      h('div', { class: 'badges' }, Object.entries(summary.by_type).map(([t, n]) => h('span', { class: 'count', dataset: { type: t } }, eventBadge(t), String(n)))),
      table([
        { label: 'Task', cell: (r) => r.task_name },
        { label: 'Events', class: 'num', cell: (r) => r.total },
        { label: 'By type', cell: (r) => Object.entries(r.by_type).map(([t, n]) => h('span', { class: 'count' }, eventBadge(t), String(n))) },
      ], summary.by_task_name, { empty: 'No events in this window.', rowAttrs: (r) => ({ dataset: { taskName: r.task_name } }) }),
    );
    list.replaceChildren(table([
      { label: 'At', cell: (e) => time(e.at) },
      { label: 'Type', cell: (e) => eventBadge(e.type) },
      { label: 'Task', cell: (e) => [taskLink(e.task_id), h('span', { class: 'muted' }, ` ${e.task_name}`)] },
      { label: 'Queue', cell: (e) => e.queue },
      { label: 'Attempt', class: 'num', cell: (e) => e.attempt },
      { label: 'Worker', cell: (e) => (e.worker_id ? h('span', { class: 'mono' }, e.worker_id) : '') },
      { label: 'Correlation id', cell: (e) => (e.correlation_id
        ? h('a', { class: 'mono', href: `#/audit?correlation_id=${encodeURIComponent(e.correlation_id)}&window=all` }, e.correlation_id) : '') },
      { label: 'Detail', class: 'clip', cell: (e) => (e.detail ? h('span', { title: e.detail }, e.detail) : '') },
    ], page.events, { empty: 'No events match.', rowAttrs: (e) => ({ dataset: { eventId: e.event_id, type: e.type } }) }));
    pager.render({ tasks: page.events, next_cursor: page.next_cursor });
  }

  return { refresh };
}
