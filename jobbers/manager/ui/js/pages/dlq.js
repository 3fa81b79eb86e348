// Dead letter queue: failed and stalled tasks with their history; resubmit or delete them,
// by selection or by filter.

import { del, get, post } from '../api.js';
import { field, h, notice, outcomeSummary, Pager, Selection, statusBadge, table, taskLink, time } from '../dom.js';
import { queueSelect, runAction, taskNameList } from './shared.js';

export const title = 'Dead letter queue';

function history(t, expanded) {
  const details = h('details', { open: expanded.has(t.id) },
    h('summary', {}, `${t.errors.length} attempt${t.errors.length === 1 ? '' : 's'}`),
    h('ol', { class: 'history' }, t.errors.map((e) => h('li', {},
      time(e.at), ' ', h('span', { class: 'muted' }, `attempt ${e.attempt}`), ' ',
      h('span', { class: 'mono' }, e.exception_type), ': ', e.message))));
  details.addEventListener('toggle', () => { details.open ? expanded.add(t.id) : expanded.delete(t.id); });
  return details;
}

export function mount(root, { query }) {
  const filters = { queue: query.get('queue') || '', task_name: query.get('task_name') || '' };
  const filtered = Boolean(filters.queue || filters.task_name);
  let lastKey = '';
  const expanded = new Set();
  const box = h('div', { class: 'result' });
  const list = h('div');
  const selection = new Selection(() => updateButtons());
  const pager = new Pager(() => { lastKey = ''; return refresh(); });
  const reset = h('input', { type: 'checkbox', name: 'reset_retry_count', checked: true });
  const limit = h('input', { type: 'number', name: 'limit', min: 1, max: 1000, value: 100, class: 'short' });
  const resubmitSel = h('button', { type: 'button', class: 'primary' }, 'Resubmit selected');
  const deleteSel = h('button', { type: 'button', class: 'danger' }, 'Delete selected');
  // Acting on "all" is offered only for a filter (a queue or a task name): with "any queue" it
  // would reach every dead letter of every queue, which is rarely meant and easy to misread.
  const matching = 'matching the filter';
  const resubmitAll = h('button', { type: 'button' }, `Resubmit all ${matching}`);
  const deleteAll = h('button', { type: 'button', class: 'danger' }, `Delete all ${matching}`);
  const byFilter = filtered
    ? [h('span', { class: 'sep' }), resubmitAll, deleteAll, h('label', { class: 'check' }, 'limit', limit)]
    : [h('span', { class: 'muted hint' }, 'Choose a queue or a task name to act on all matching entries.')];

  function updateButtons() {
    const n = selection.ids.size;
    resubmitSel.disabled = deleteSel.disabled = n === 0;
    resubmitSel.textContent = n ? `Resubmit selected (${n})` : 'Resubmit selected';
    deleteSel.textContent = n ? `Delete selected (${n})` : 'Delete selected';
  }

  const filterBody = () => ({ queue: filters.queue || null, task_name: filters.task_name || null });
  const after = () => { selection.clear(); lastKey = ''; return refresh(); };

  async function resubmit(body) {
    await runAction(box, async () => {
      const answer = await post('/dead-letter-queue/resubmit', { ...body, reset_retry_count: reset.checked });
      return `Resubmit: ${outcomeSummary(answer.results)}.`;
    });
    await after();
  }
  async function remove(query) {
    await runAction(box, async () => {
      const answer = await del('/dead-letter-queue', query);
      return `Removed ${answer.removed} from the dead letter queue.`;
    });
    await after();
  }
  resubmitSel.addEventListener('click', () => resubmit({ task_ids: [...selection.ids] }));
  deleteSel.addEventListener('click', () => {
    if (window.confirm(`Delete ${selection.ids.size} dead letters? Their task records stay until pruned.`)) {
      remove({ task_ids: [...selection.ids] });
    }
  });
  resubmitAll.addEventListener('click', () => {
    if (window.confirm(`Resubmit up to ${limit.value} dead letters ${matching}?`)) resubmit({ ...filterBody(), limit: Number(limit.value) || 100 });
  });
  deleteAll.addEventListener('click', () => {
    if (window.confirm(`Delete up to ${limit.value} dead letters ${matching}?`)) remove({ ...filterBody(), limit: Number(limit.value) || 100 });
  });

  const form = h('form', { class: 'filters', novalidate: true },
    field('Queue', queueSelect('queue', filters.queue, 'any queue')),
    field('Task name', h('input', { name: 'task_name', list: 'dlq-task-names', value: filters.task_name, placeholder: 'any task' })),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Apply'),
      h('a', { href: '#/dlq', class: 'button' }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) params.append(k, v);
    const hash = `#/dlq?${params}`;
    if (hash === location.hash) { pager.reset(); lastKey = ''; refresh(); } else location.hash = hash;
  });

  root.append(h('h1', {}, 'Dead letter queue'), form, taskNameList('dlq-task-names'),
    h('div', { class: 'toolbar' }, resubmitSel, deleteSel, ...byFilter,
      h('label', { class: 'check' }, reset, 'reset retry count')),
    box, list, pager.el);
  updateButtons();

  async function refresh() {
    const page = await get('/dead-letter-queue', { ...filters, cursor: pager.cursor });
    const key = JSON.stringify(page);
    if (key === lastKey) return;
    lastKey = key;
    selection.keepOnly(page.tasks.map((t) => t.id));
    updateButtons();
    list.replaceChildren(table([
      selection.column(page.tasks),
      { label: 'ID', cell: (t) => taskLink(t.id) },
      { label: 'Task', cell: (t) => [t.name, h('span', { class: 'muted' }, ` v${t.version}`)] },
      { label: 'Queue', cell: (t) => t.queue },
      { label: 'Status', cell: (t) => statusBadge(t.status) },
      { label: 'Dead-lettered', cell: (t) => time(t.dead_lettered_at) },
      { label: 'Retries', class: 'num', cell: (t) => t.retry_attempt },
      { label: 'Last error', class: 'clip', cell: (t) => (t.error ? h('span', { title: t.error }, t.error) : '') },
      { label: 'History', cell: (t) => history(t, expanded) },
    ], page.tasks, { empty: 'The dead letter queue is empty.', rowAttrs: (t) => ({ dataset: { id: t.id } }) }));
    pager.render(page);
    if (page.total === null && page.tasks.length === 0 && page.next_cursor) {
      list.append(notice('info', 'No match among the entries examined so far; use Next to keep looking.'));
    }
  }

  return { refresh };
}
