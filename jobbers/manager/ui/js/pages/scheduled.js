// Scheduled: tasks waiting for their run time (delayed submissions and retry delays), soonest first.

import { get } from '../api.js';
import { duration, field, h, table, time } from '../dom.js';
import { cancellableListing, queueSelect, taskColumns } from './shared.js';

export const title = 'Scheduled tasks';

export function mount(root, { query }) {
  const queue = query.get('queue') || '';
  let lastKey = '';
  const { box, list, selection, pager, cancel } = cancellableListing(() => { lastKey = ''; return refresh(); });
  const picker = queueSelect('queue', queue, 'any queue');
  picker.addEventListener('change', () => { location.hash = picker.value ? `#/scheduled?queue=${encodeURIComponent(picker.value)}` : '#/scheduled'; });

  root.append(h('h1', {}, 'Scheduled tasks'),
    h('form', { class: 'filters' }, field('Queue', picker)),
    h('div', { class: 'toolbar' }, cancel.button), box, list, pager.el);

  async function refresh() {
    const page = await get('/scheduled-tasks', { queue, cursor: pager.cursor });
    // Re-rendered when the listing changes, and every 10 s for the "Due" column.
    const key = JSON.stringify(page) + Math.floor(Date.now() / 10000);
    if (key === lastKey) return;
    lastKey = key;
    selection.keepOnly(page.tasks.map((t) => t.id));
    cancel.update();
    const now = Date.now();
    list.replaceChildren(table([
      ...taskColumns(selection, page.tasks),
      { label: 'Runs at', cell: (t) => time(t.run_at) },
      { label: 'Due', cell: (t) => { const s = (Date.parse(t.run_at) - now) / 1000; return s > 0 ? `in ${duration(s)}` : 'now'; } },
      { label: 'Submitted', cell: (t) => time(t.submitted_at) },
      { label: 'Retries', class: 'num', cell: (t) => t.retry_attempt },
      { label: 'Last error', class: 'clip', cell: (t) => (t.error ? h('span', { title: t.error }, t.error) : '') },
    ], page.tasks, { empty: 'Nothing is scheduled.', rowAttrs: (t) => ({ dataset: { id: t.id } }) }));
    pager.render(page);
  }

  return { refresh };
}
