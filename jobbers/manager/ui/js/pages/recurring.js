// Recurring entries: tasks the scheduler submits on a cron schedule or an interval. List with the
// next fire times; create, edit, pause/resume and delete.

import { del, get, post, put } from '../api.js';
import { clearFormErrors, field, h, notice, showFormErrors, table, time } from '../dom.js';
import { queueSelect, runAction, taskNameList } from './shared.js';

export const title = 'Recurring';

export function mount(root) {
  let editing = null;
  let lastKey = '';
  const box = h('div', { class: 'result' });
  const list = h('div');
  const heading = h('h2', {}, 'New recurring entry');
  const key = h('input', { name: 'key', autocomplete: 'off', placeholder: 'nightly-report' });
  const taskName = h('input', { name: 'task_name', autocomplete: 'off', list: 'recurring-task-names' });
  const version = h('input', { name: 'task_version', type: 'number', min: '1', value: '1' });
  const params = h('textarea', { name: 'params', rows: '3', spellcheck: 'false' }, '{}');
  const kind = h('select', { name: 'kind' },
    h('option', { value: 'cron' }, 'cron expression'), h('option', { value: 'every' }, 'every N seconds'));
  const cron = h('input', { name: 'cron', autocomplete: 'off', placeholder: '0 3 * * *' });
  const timezone = h('input', { name: 'timezone', autocomplete: 'off', placeholder: 'UTC' });
  const every = h('input', { name: 'every', type: 'number', min: '1', step: 'any', placeholder: '600' });
  const priority = h('input', { name: 'priority', type: 'number', min: '-100', max: '100', value: '0' });
  const description = h('input', { name: 'description', autocomplete: 'off' });
  const catchUp = h('input', { name: 'catch_up', type: 'checkbox' });
  let queue = queueSelect('queue', 'default');
  const queueSlot = h('div', {}, field('Queue', queue));
  const cronFields = h('div', {}, field('Cron', cron, '5 fields, or 6 with seconds first'),
    field('Timezone', timezone, 'IANA name, e.g. Europe/Paris; empty = UTC'));
  const everyFields = h('div', { hidden: true }, field('Every (seconds)', every));
  kind.addEventListener('change', () => {
    cronFields.hidden = kind.value !== 'cron';
    everyFields.hidden = kind.value !== 'every';
  });
  const saveBtn = h('button', { type: 'submit', class: 'primary' }, 'Create entry');
  const cancelEdit = h('button', { type: 'button', hidden: true }, 'Stop editing');
  const form = h('form', { class: 'editor', novalidate: true },
    heading,
    h('div', { class: 'form-error' }),
    field('Key', key, 'letters, digits, _ . : - (up to 200)'),
    field('Task', taskName), taskNameList('recurring-task-names'),
    field('Version', version),
    field('Params (JSON object)', params),
    queueSlot,
    field('Schedule', kind), cronFields, everyFields,
    field('Priority', priority, '-100 to 100; higher runs first'),
    field('Description', description),
    h('label', { class: 'check' }, catchUp, ' Catch up every missed fire time after downtime'),
    h('div', { class: 'actions' }, saveBtn, cancelEdit));

  function edit(entry) {
    editing = entry;
    clearFormErrors(form);
    heading.textContent = entry ? `Edit recurring entry ${entry.key}` : 'New recurring entry';
    key.value = entry ? entry.key : '';
    key.readOnly = Boolean(entry);
    taskName.value = entry ? entry.task_name : '';
    version.value = entry ? String(entry.task_version) : '1';
    params.value = JSON.stringify(entry ? entry.params : {});
    kind.value = entry && entry.every !== null ? 'every' : 'cron';
    kind.dispatchEvent(new Event('change'));
    cron.value = entry && entry.cron ? entry.cron : '';
    timezone.value = entry && entry.timezone ? entry.timezone : '';
    every.value = entry && entry.every !== null ? String(entry.every) : '';
    priority.value = entry ? String(entry.priority) : '0';
    description.value = entry ? entry.description : '';
    catchUp.checked = Boolean(entry && entry.catch_up);
    queue = queueSelect('queue', entry ? entry.queue : 'default');
    queueSlot.replaceChildren(field('Queue', queue));
    saveBtn.textContent = entry ? 'Save changes' : 'Create entry';
    cancelEdit.hidden = !entry;
  }
  cancelEdit.addEventListener('click', () => edit(null));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFormErrors(form);
    let parsed;
    try {
      parsed = JSON.parse(params.value || '{}');
    } catch {
      form.querySelector('[data-error-for="params"]').replaceChildren(h('span', {}, 'not valid JSON'));
      return;
    }
    const body = {
      task_name: taskName.value.trim(),
      task_version: Number(version.value || 1),
      params: parsed,
      queue: queue.value || 'default',
      priority: Number(priority.value || 0),
      description: description.value,
      catch_up: catchUp.checked,
      paused: editing ? editing.paused : false,
    };
    if (kind.value === 'cron') {
      body.cron = cron.value.trim();
      if (timezone.value.trim()) body.timezone = timezone.value.trim();
    } else {
      body.every = Number(every.value);
    }
    const entryKey = editing ? editing.key : key.value.trim();
    try {
      if (editing) await put(`/recurring/${encodeURIComponent(entryKey)}`, body);
      else await post('/recurring', { key: entryKey, ...body });
    } catch (err) {
      showFormErrors(form, err);
      return;
    }
    box.replaceChildren(notice('ok', `Recurring entry ${entryKey} ${editing ? 'saved' : 'created'}.`));
    edit(null);
    lastKey = '';
    await refresh();
  });

  async function act(entry, what) {
    await runAction(box, async () => {
      if (what === 'delete') {
        if (!window.confirm(`Delete recurring entry ${entry.key}?`)) return '';
        await del(`/recurring/${encodeURIComponent(entry.key)}`);
        return `Recurring entry ${entry.key} deleted.`;
      }
      await post(`/recurring/${encodeURIComponent(entry.key)}/${what}`);
      return `Recurring entry ${entry.key} ${what === 'pause' ? 'paused' : 'resumed'}.`;
    });
    lastKey = '';
    await refresh();
  }

  root.append(h('h1', {}, 'Recurring'), h('div', { class: 'split' }, h('div', {}, box, list), form));

  async function refresh() {
    const entries = await get('/recurring');
    const stamp = JSON.stringify(entries);
    if (stamp === lastKey) return;
    lastKey = stamp;
    list.replaceChildren(table([
      { label: 'Key', cell: (e) => [e.key, e.static ? h('span', { class: 'chip' }, 'in code') : null] },
      { label: 'Task', cell: (e) => (e.workflow
        ? [`workflow ${e.workflow.name || e.key} (${e.workflow.nodes.length} nodes)`,
          e.skip_if_running ? h('span', { class: 'chip' }, 'skip if running') : null]
        : `${e.task_name} v${e.task_version}`) },
      { label: 'Schedule', cell: (e) => (e.cron ? `${e.cron}${e.timezone ? ` (${e.timezone})` : ''}` : `every ${e.every} s`) },
      { label: 'Queue', cell: (e) => e.queue },
      { label: 'Next runs', cell: (e) => (e.paused
        ? h('span', { class: 'badge', dataset: { paused: '' } }, 'paused')
        : h('ul', { class: 'plain' }, ...e.next_runs.slice(0, 3).map((t) => h('li', {}, time(t))))) },
      { label: 'Last fired', cell: (e) => (e.last_fired_at ? time(e.last_fired_at) : h('span', { class: 'muted' }, 'never')) },
      { label: 'Params', class: 'clip', cell: (e) => h('code', {}, JSON.stringify(e.params)) },
      { label: '', class: 'row-actions', cell: (e) => [
        h('a', { href: `#/tasks?recurring_key=${encodeURIComponent(e.key)}` }, 'Tasks'),
        // A workflow entry is changed over the API (PUT /recurring/{key}); this form edits tasks.
        e.workflow ? null : h('button', { type: 'button', onclick: () => edit(e), 'aria-label': `Edit ${e.key}` }, 'Edit'),
        e.paused
          ? h('button', { type: 'button', onclick: () => act(e, 'resume'), 'aria-label': `Resume ${e.key}` }, 'Resume')
          : h('button', { type: 'button', onclick: () => act(e, 'pause'), 'aria-label': `Pause ${e.key}` }, 'Pause'),
        h('button', { type: 'button', class: 'danger', onclick: () => act(e, 'delete'), 'aria-label': `Delete ${e.key}` }, 'Delete'),
      ] },
    ], entries, { empty: 'No recurring entries.', rowAttrs: (e) => ({ dataset: { key: e.key } }) }));
  }

  return { refresh };
}
