// Tasks: filter by status, queue, task name, recurring entry and correlation id; page by cursor;
// select and cancel.

import { get } from '../api.js';
import { field, h, STATUSES, statusBadge, table, time } from '../dom.js';
import { cancellableListing, queueSelect, taskNameList, taskColumns } from './shared.js';

export const title = 'Tasks';

const PAGE_SIZES = [25, 50, 100, 250];

export function mount(root, { query }) {
  const filters = {
    status: query.getAll('status'),
    queue: query.get('queue') || '',
    task_name: query.get('task_name') || '',
    recurring_key: query.get('recurring_key') || '',
    correlation_id: query.get('correlation_id') || '',
    limit: Number(query.get('limit')) || 50,
  };
  let lastKey = '';
  const { box, list, selection, pager, cancel } = cancellableListing(() => { lastKey = ''; return refresh(); });

  const form = h('form', { class: 'filters', novalidate: true },
    h('fieldset', { class: 'statuses' }, h('legend', {}, 'Status'),
      STATUSES.map((s) => h('label', { class: 'check' },
        h('input', { type: 'checkbox', name: 'status', value: s, checked: filters.status.includes(s) }), s))),
    field('Queue', queueSelect('queue', filters.queue, 'any queue')),
    field('Task name', h('input', { name: 'task_name', list: 'task-names', value: filters.task_name, placeholder: 'any task' })),
    field('Recurring entry', h('input', { name: 'recurring_key', value: filters.recurring_key, placeholder: 'any' })),
    field('Correlation id', h('input', { name: 'correlation_id', value: filters.correlation_id, placeholder: 'any', maxlength: 256 })),
    field('Per page', h('select', { name: 'limit' },
      PAGE_SIZES.map((n) => h('option', { value: n, selected: n === filters.limit }, String(n))))),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Apply'),
      h('a', { href: '#/tasks', class: 'button' }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) params.append(k, v);
    const hash = `#/tasks?${params}`;
    if (hash === location.hash) { pager.reset(); lastKey = ''; refresh(); } else location.hash = hash;
  });

  root.append(h('h1', {}, 'Tasks'), form, taskNameList('task-names'),
    h('div', { class: 'toolbar' }, cancel.button), box, list, pager.el);

  async function refresh() {
    const page = await get('/tasks', {
      status: filters.status, queue: filters.queue, task_name: filters.task_name,
      recurring_key: filters.recurring_key || undefined,
      correlation_id: filters.correlation_id || undefined, limit: filters.limit,
      cursor: pager.cursor,
    });
    const key = JSON.stringify(page);
    if (key === lastKey) return;
    lastKey = key;
    selection.keepOnly(page.tasks.map((t) => t.id));
    cancel.update();
    list.replaceChildren(table([
      ...taskColumns(selection, page.tasks),
      { label: 'Status', cell: (t) => [statusBadge(t.status), t.cancel_requested && t.status === 'started' ? h('span', { class: 'badge warn' }, 'cancelling') : null] },
      { label: 'Priority', class: 'num', cell: (t) => t.priority ?? 0 },
      { label: 'Submitted', cell: (t) => time(t.submitted_at) },
      { label: 'Finished', cell: (t) => time(t.completed_at) },
      { label: 'Retries', class: 'num', cell: (t) => t.retry_attempt },
      { label: 'Error', class: 'clip', cell: (t) => (t.error ? h('span', { title: t.error }, t.error) : '') },
    ], page.tasks, { empty: 'No tasks match.', rowAttrs: (t) => ({ dataset: { id: t.id } }) }));
    pager.render(page);
  }

  return { refresh };
}
