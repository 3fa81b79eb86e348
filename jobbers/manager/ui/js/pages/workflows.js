// Workflows: the runs (newest first, paged by cursor) and a form that submits a run from JSON.

import { get, post } from '../api.js';
import { clearFormErrors, field, h, showFormErrors, table, time } from '../dom.js';
import { workflowBadge } from './workflow.js';

export const title = 'Workflows';

const EXAMPLE = {
  name: 'example',
  nodes: [
    { id: 'first', name: 'add', params: { a: 1, b: 2 } },
    { id: 'second', name: 'add', params: { a: 3 }, after: ['first'] },
    { id: 'on-failure', name: 'add', params: { a: 0 }, on_error_of: ['second'] },
  ],
};

/** "nodes.1.name: node 'b': no task ..." for each 422 error, naming the node at fault. */
function describeErrors(err) {
  return err.fieldErrors.map((e) => {
    const loc = (e.loc || []).filter((p) => p !== 'body');
    return loc.length ? `${loc.join('.')}: ${e.msg}` : e.msg;
  });
}

export function mount(root) {
  const cursors = [null];
  let next = null;
  const list = h('div');
  const pager = h('div', { class: 'pager' });
  const graph = h('textarea', { name: 'graph', rows: 14, spellcheck: 'false', class: 'mono' },
    JSON.stringify(EXAMPLE, null, 2));
  const errors = h('ul', { class: 'errors' });
  const form = h('form', { class: 'editor wide', novalidate: true },
    h('h2', {}, 'Submit a workflow'),
    h('div', { class: 'form-error' }),
    field('Workflow (JSON: nodes with id, name, version, queue, params, priority, after, on_error_of)', graph,
      'after: the nodes that must complete first; on_error_of: the nodes whose failure this node handles'),
    errors,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Submit workflow')));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFormErrors(form);
    errors.replaceChildren();
    let body;
    try {
      body = JSON.parse(graph.value);
    } catch (err) {
      form.querySelector('[data-error-for="graph"]').textContent = `Not valid JSON: ${err.message}`;
      return;
    }
    try {
      const run = await post('/workflows', body);
      location.hash = `#/workflow/${encodeURIComponent(run.id)}`;
    } catch (err) {
      if (err.fieldErrors.length) errors.replaceChildren(...describeErrors(err).map((m) => h('li', { class: 'error' }, m)));
      else showFormErrors(form, err);
    }
  });

  async function refresh() {
    const page = await get('/workflows', { limit: 50, cursor: cursors[cursors.length - 1] });
    next = page.next_cursor;
    list.replaceChildren(table([
      { label: 'Run', cell: (w) => h('a', { href: `#/workflow/${encodeURIComponent(w.id)}`, class: 'mono' }, w.id) },
      { label: 'Name', cell: (w) => w.name || h('span', { class: 'muted' }, '—') },
      { label: 'Queue', cell: (w) => w.queue },
      { label: 'Status', cell: (w) => workflowBadge(w.status) },
      { label: 'Created', cell: (w) => time(w.created_at) },
      { label: 'Ended', cell: (w) => time(w.completed_at) },
      { label: 'Failed node', cell: (w) => w.failed_node || h('span', { class: 'muted' }, '—') },
    ], page.workflows, { empty: 'No workflow runs yet.', rowAttrs: (w) => ({ dataset: { id: w.id } }) }));
    pager.replaceChildren(
      h('button', { type: 'button', disabled: cursors.length === 1, onclick: () => { cursors.pop(); refresh(); } }, '← Previous'),
      h('span', { class: 'muted' }, `Page ${cursors.length} · ${page.workflows.length} shown`),
      h('button', { type: 'button', disabled: !next, onclick: () => { cursors.push(next); refresh(); } }, 'Next →'));
  }

  root.append(h('h1', {}, 'Workflows'), list, pager, form);
  return { refresh };
}
