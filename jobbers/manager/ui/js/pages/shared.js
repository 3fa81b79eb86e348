// Pieces several pages use: queue and task-type pickers, running an action with its message,
// the "cancel selected" button, and the frame of a listing of cancellable tasks.

import { get, post } from '../api.js';
import { h, notice, outcomeSummary, Pager, Selection, taskLink } from '../dom.js';

/** A <select name=NAME> of every queue (filled when /queues answers), `anyLabel` first if given. */
export function queueSelect(name, selected, anyLabel) {
  const select = h('select', { name },
    anyLabel === undefined ? null : h('option', { value: '' }, anyLabel),
    selected ? h('option', { value: selected, selected: true }, selected) : null);
  get('/queues').then((queues) => {
    const names = queues.map((q) => q.name);
    if (selected && !names.includes(selected)) names.unshift(selected);
    select.replaceChildren(
      anyLabel === undefined ? null : h('option', { value: '' }, anyLabel),
      ...names.map((q) => h('option', { value: q, selected: q === selected }, q)),
    );
    select.value = selected || '';
    if (!selected && anyLabel === undefined && names.includes('default')) select.value = 'default';
  }).catch(() => {});
  return select;
}

/** A <datalist id=ID> of registered task names (filled when /task-types answers). */
export function taskNameList(id) {
  const list = h('datalist', { id });
  get('/task-types').then((types) => {
    const names = [...new Set(types.map((t) => t.name))].sort();
    list.replaceChildren(...names.map((n) => h('option', { value: n })));
  }).catch(() => {});
  return list;
}

/** Run `action()` (async, returning a message) and show its message, or its error, in `box`. */
export async function runAction(box, action) {
  box.replaceChildren(notice('info', 'Working…'));
  try {
    const message = await action();
    box.replaceChildren(message ? notice('ok', message) : '');
    return true;
  } catch (err) {
    box.replaceChildren(notice('error', err.message));
    return false;
  }
}

/** "Cancel selected (n)": cancels the selected tasks after a confirmation, then calls `after()`. */
export function cancelButton(selection, box, after) {
  const button = h('button', { type: 'button', class: 'danger', disabled: true }, 'Cancel selected');
  button.addEventListener('click', async () => {
    const ids = [...selection.ids];
    if (!ids.length || !window.confirm(`Cancel ${ids.length} task${ids.length > 1 ? 's' : ''}?`)) return;
    await runAction(box, async () => {
      const answer = await post('/tasks/cancel', { task_ids: ids });
      selection.clear();
      return `Cancel: ${outcomeSummary(answer.results)}.`;
    });
    await after();
  });
  const update = () => {
    const n = selection.ids.size;
    button.disabled = n === 0;
    button.textContent = n ? `Cancel selected (${n})` : 'Cancel selected';
  };
  return { button, update };
}

/** The frame of a page listing tasks to select and cancel: message box, list, selection, cursor
 *  pager and "cancel selected" button. `forceRefresh()` must re-render even if nothing changed. */
export function cancellableListing(forceRefresh) {
  const box = h('div', { class: 'result' });
  const list = h('div');
  const selection = new Selection(() => cancel.update());
  const pager = new Pager(forceRefresh);
  const cancel = cancelButton(selection, box, forceRefresh);
  return { box, list, selection, pager, cancel };
}

/** The first columns of every task table: select, id (linked), task name and version, queue. */
export function taskColumns(selection, tasks) {
  return [
    selection.column(tasks),
    { label: 'ID', cell: (t) => taskLink(t.id) },
    { label: 'Task', cell: (t) => [t.name, h('span', { class: 'muted' }, ` v${t.version}`)] },
    { label: 'Queue', cell: (t) => t.queue },
  ];
}
