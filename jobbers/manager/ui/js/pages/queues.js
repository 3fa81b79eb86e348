// Queues: what each holds now (paused, ready, scheduled, running, latency, last minute's
// outcomes), pause / resume / clear, and create, edit (concurrency, rate limit), delete. The API
// validates; its 422 messages are shown next to the fields they name.

import { del, get, post, put } from '../api.js';
import { clearFormErrors, duration, field, h, notice, showFormErrors, table } from '../dom.js';
import { runAction } from './shared.js';

export const title = 'Queues';

const PERIODS = ['second', 'minute', 'hour', 'day'];

/** A form value as the API wants it: '' -> null, digits -> a number, anything else as typed. */
function numberOrText(value) {
  const text = String(value).trim();
  if (text === '') return null;
  return /^-?\d+$/.test(text) ? Number(text) : text;
}

function rateText(q) {
  if (!q.rate_numerator) return h('span', { class: 'muted' }, 'none');
  const per = q.rate_denominator === 1 ? q.rate_period : `${q.rate_denominator} ${q.rate_period}s`;
  return `${q.rate_numerator} per ${per}`;
}

export function mount(root) {
  let editing = null; // the queue being edited, or null when creating
  let lastKey = '';
  const box = h('div', { class: 'result' });
  const list = h('div');
  const heading = h('h2', {}, 'New queue');
  const inputs = {
    name: h('input', { name: 'name', autocomplete: 'off', placeholder: 'reports' }),
    max_concurrent: h('input', { name: 'max_concurrent', inputmode: 'numeric', placeholder: 'unlimited' }),
    rate_numerator: h('input', { name: 'rate_numerator', inputmode: 'numeric', placeholder: 'no limit' }),
    rate_denominator: h('input', { name: 'rate_denominator', inputmode: 'numeric', value: '1' }),
    rate_period: h('select', { name: 'rate_period' }, PERIODS.map((p) => h('option', { value: p }, p))),
  };
  const saveBtn = h('button', { type: 'submit', class: 'primary' }, 'Create queue');
  const cancelEdit = h('button', { type: 'button', hidden: true }, 'Stop editing');
  const form = h('form', { class: 'editor', novalidate: true },
    heading,
    h('div', { class: 'form-error' }),
    field('Name', inputs.name, 'letters, digits, _ . - (up to 64)'),
    field('Max concurrent', inputs.max_concurrent, 'across all workers; empty = unlimited'),
    h('div', { class: 'field-row' },
      field('Rate: tasks', inputs.rate_numerator),
      field('per', inputs.rate_denominator),
      field('period', inputs.rate_period)),
    h('div', { class: 'actions' }, saveBtn, cancelEdit));

  function edit(q) {
    editing = q;
    clearFormErrors(form);
    heading.textContent = q ? `Edit queue ${q.name}` : 'New queue';
    inputs.name.value = q ? q.name : '';
    inputs.name.readOnly = Boolean(q);
    inputs.max_concurrent.value = q && q.max_concurrent ? q.max_concurrent : '';
    inputs.rate_numerator.value = q && q.rate_numerator ? q.rate_numerator : '';
    inputs.rate_denominator.value = q ? q.rate_denominator : 1;
    inputs.rate_period.value = q ? q.rate_period : 'second';
    saveBtn.textContent = q ? 'Save changes' : 'Create queue';
    cancelEdit.hidden = !q;
    if (q) inputs.max_concurrent.focus();
  }
  cancelEdit.addEventListener('click', () => edit(null));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFormErrors(form);
    const body = {
      max_concurrent: numberOrText(inputs.max_concurrent.value),
      rate_numerator: numberOrText(inputs.rate_numerator.value),
      rate_denominator: numberOrText(inputs.rate_denominator.value) ?? 1,
      rate_period: inputs.rate_period.value,
    };
    const name = inputs.name.value.trim();
    try {
      if (editing) await put(`/queues/${encodeURIComponent(editing.name)}`, body);
      else await post('/queues', { name, ...body });
    } catch (err) {
      showFormErrors(form, err);
      return;
    }
    box.replaceChildren(notice('ok', `Queue ${name} ${editing ? 'saved' : 'created'}.`));
    edit(null);
    lastKey = '';
    await refresh();
  });

  async function remove(q) {
    if (!window.confirm(`Delete queue ${q.name}? It is also removed from every role.`)) return;
    await runAction(box, async () => {
      await del(`/queues/${encodeURIComponent(q.name)}`);
      return `Queue ${q.name} deleted.`;
    });
    if (editing && editing.name === q.name) edit(null);
    lastKey = '';
    await refresh();
  }

  async function control(q, action) {
    if (action === 'clear' && !window.confirm(
      `Clear queue ${q.name}? Its ${q.ready + q.blocked} waiting and ${q.scheduled} scheduled tasks end cancelled; running tasks finish.`,
    )) return;
    await runAction(box, async () => {
      const answer = await post(`/queues/${encodeURIComponent(q.name)}/${action}`);
      if (action === 'clear') return `Queue ${q.name} cleared: ${answer.cleared} waiting tasks cancelled.`;
      return `Queue ${q.name} ${action === 'pause' ? 'paused: no worker starts its tasks' : 'resumed'}.`;
    });
    lastKey = '';
    await refresh();
  }

  root.append(h('h1', {}, 'Queues'), h('div', { class: 'split' }, h('div', {}, box, list), form));

  async function refresh() {
    const queues = await get('/queues');
    const key = JSON.stringify(queues);
    if (key === lastKey) return;
    lastKey = key;
    list.replaceChildren(table([
      { label: 'Queue', cell: (q) => [
        h('a', { href: `#/tasks?queue=${encodeURIComponent(q.name)}` }, q.name),
        q.paused ? h('span', { class: 'badge warn', dataset: { paused: '' } }, 'paused') : null,
      ] },
      { label: 'Max concurrent', class: 'num', cell: (q) => q.max_concurrent ?? h('span', { class: 'muted' }, 'unlimited') },
      { label: 'Rate limit', cell: rateText },
      { label: 'Ready', class: 'num', cell: (q) => q.ready },
      { label: 'Blocked', class: 'num', cell: (q) => (q.blocked ? h('span', { title: 'waiting for a concurrency key slot' }, q.blocked) : 0) },
      { label: 'Scheduled', class: 'num', cell: (q) => q.scheduled },
      { label: 'Running', class: 'num', cell: (q) => q.running },
      { label: 'Latency', class: 'num', cell: (q) => (q.ready ? duration(q.latency_ms / 1000) : h('span', { class: 'muted' }, '—')) },
      { label: 'Last min', class: 'num', cell: (q) => h('span', { title: 'completed / failed in the last 60 s' },
        `${q.completed_last_minute} / ${q.failed_last_minute}`) },
      { label: '', class: 'row-actions', cell: (q) => [
        q.paused
          ? h('button', { type: 'button', onclick: () => control(q, 'resume'), 'aria-label': `Resume queue ${q.name}` }, 'Resume')
          : h('button', { type: 'button', onclick: () => control(q, 'pause'), 'aria-label': `Pause queue ${q.name}` }, 'Pause'),
        h('button', { type: 'button', class: 'danger', onclick: () => control(q, 'clear'), 'aria-label': `Clear queue ${q.name}` }, 'Clear'),
        h('button', { type: 'button', onclick: () => edit(q), 'aria-label': `Edit queue ${q.name}` }, 'Edit'),
        // The default queue, where a submit that names none goes, cannot be deleted.
        q.name === 'default' ? null
          : h('button', { type: 'button', class: 'danger', onclick: () => remove(q), 'aria-label': `Delete queue ${q.name}` }, 'Delete'),
      ] },
    ], queues, { empty: 'No queues.', rowAttrs: (q) => ({ dataset: { queue: q.name } }) }));
  }

  return { refresh };
}
