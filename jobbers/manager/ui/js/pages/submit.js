// Submit: pick a registered task (name and version), give JSON params, a queue and maybe a run time.

import { get, post } from '../api.js';
import { clearFormErrors, field, h, showFormErrors } from '../dom.js';
import { queueSelect } from './shared.js';

export const title = 'Submit a task';

function describeParams(type) {
  if (!type) return '';
  const optional = type.params.filter((p) => !type.required_params.includes(p));
  const parts = [];
  if (type.required_params.length) parts.push(`required: ${type.required_params.join(', ')}`);
  if (optional.length) parts.push(`optional: ${optional.join(', ')}`);
  if (type.accepts_any_params) parts.push('accepts any other params');
  if (!parts.length) parts.push('takes no params');
  return `${parts.join('; ')} · max_retries ${type.max_retries} · timeout ${type.timeout ?? 'none'}`
    + ` · dead letters: ${type.dead_letter_policy}`;
}

export function mount(root) {
  let types = [];
  const task = h('select', { name: 'name' }, h('option', { value: '' }, 'loading…'));
  const about = h('p', { class: 'muted about' });
  const params = h('textarea', { name: 'params', rows: 8, spellcheck: 'false', class: 'mono' }, '{}');
  const runAt = h('input', { name: 'run_at', type: 'datetime-local', step: 1 });
  const form = h('form', { class: 'editor wide', novalidate: true },
    h('div', { class: 'form-error' }),
    field('Task', task),
    about,
    field('Params (JSON object)', params),
    field('Queue', queueSelect('queue', '')),
    field('Run at (optional, your local time)', runAt, 'leave empty to queue it now'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Submit task')));

  task.addEventListener('change', () => { about.textContent = describeParams(types[Number(task.value)]); });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFormErrors(form);
    const type = types[Number(task.value)];
    if (!type) return;
    let parsed;
    try {
      parsed = JSON.parse(params.value || '{}');
    } catch (err) {
      form.querySelector('[data-error-for="params"]').textContent = `Not valid JSON: ${err.message}`;
      return;
    }
    const body = { name: type.name, version: type.version, queue: new FormData(form).get('queue'), params: parsed };
    if (runAt.value) body.run_at = new Date(runAt.value).toISOString();
    try {
      const made = await post('/tasks', body);
      location.hash = `#/task/${encodeURIComponent(made.id)}`;
    } catch (err) {
      showFormErrors(form, err);
    }
  });

  root.append(h('h1', {}, 'Submit a task'), form);

  get('/task-types').then((found) => {
    types = found.sort((a, b) => a.name.localeCompare(b.name) || a.version - b.version);
    task.replaceChildren(...types.map((t, i) => h('option', { value: i }, `${t.name} (v${t.version})`)));
    task.dispatchEvent(new Event('change'));
  }).catch((err) => {
    task.replaceChildren(h('option', { value: '' }, 'could not load task types'));
    showFormErrors(form, err);
  });

  return { async refresh() {} };
}
