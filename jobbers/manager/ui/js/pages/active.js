// Active: running tasks with their worker and running time; cancel one or many.

import { get } from '../api.js';
import { duration, field, h, table, time } from '../dom.js';
import { cancellableListing, queueSelect, taskColumns } from './shared.js';

export const title = 'Active tasks';

export function mount(root, { query }) {
  const queue = query.get('queue') || '';
  let lastKey = '';
  const clocks = new Map(); // task id -> its running-time cell, updated without a re-render
  const { box, list, selection, pager, cancel } = cancellableListing(() => { lastKey = ''; return refresh(); });
  const picker = queueSelect('queue', queue, 'any queue');
  picker.addEventListener('change', () => { location.hash = picker.value ? `#/active?queue=${encodeURIComponent(picker.value)}` : '#/active'; });

  root.append(h('h1', {}, 'Active tasks'),
    h('form', { class: 'filters' }, field('Queue', picker)),
    h('div', { class: 'toolbar' }, cancel.button), box, list, pager.el);

  async function refresh() {
    const page = await get('/active-tasks', { queue, cursor: pager.cursor });
    const key = JSON.stringify(page.tasks.map((t) => ({ ...t, running_seconds: 0 })));
    if (key === lastKey) {
      for (const t of page.tasks) clocks.get(t.id)?.replaceChildren(duration(t.running_seconds));
      return;
    }
    lastKey = key;
    clocks.clear();
    selection.keepOnly(page.tasks.map((t) => t.id));
    cancel.update();
    list.replaceChildren(table([
      ...taskColumns(selection, page.tasks),
      { label: 'Worker', cell: (t) => h('span', { class: 'mono' }, t.worker_id || '—') },
      { label: 'Started', cell: (t) => time(t.started_at) },
      { label: 'Running for', class: 'num', cell: (t) => { const span = h('span', {}, duration(t.running_seconds)); clocks.set(t.id, span); return span; } },
      { label: 'Heartbeat', cell: (t) => time(t.last_heartbeat_at) },
      { label: 'Retries', class: 'num', cell: (t) => t.retry_attempt },
      { label: '', cell: (t) => (t.cancel_requested ? h('span', { class: 'badge warn' }, 'cancelling') : '') },
    ], page.tasks, { empty: 'Nothing is running.', rowAttrs: (t) => ({ dataset: { id: t.id } }) }));
    pager.render(page);
  }

  return { refresh };
}
