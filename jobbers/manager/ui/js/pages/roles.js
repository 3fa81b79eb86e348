// Roles: named, ordered lists of queues a worker drains (first queue first). Create, change the
// queue list and its order, delete.

import { del, get, post, put } from '../api.js';
import { clearFormErrors, field, h, notice, showFormErrors, table } from '../dom.js';
import { runAction } from './shared.js';

export const title = 'Roles';

export function mount(root) {
  let editing = null;
  let lastKey = '';
  let queueNames = [];
  let chosen = [];  // the checked queues, in the role's order (a newly checked one comes last)
  const box = h('div', { class: 'result' });
  const list = h('div');
  const heading = h('h2', {}, 'New role');
  const name = h('input', { name: 'name', autocomplete: 'off', placeholder: 'heavy-workers' });
  const picks = h('div', { class: 'checks' });
  const saveBtn = h('button', { type: 'submit', class: 'primary' }, 'Create role');
  const cancelEdit = h('button', { type: 'button', hidden: true }, 'Stop editing');
  const form = h('form', { class: 'editor', novalidate: true },
    heading,
    h('div', { class: 'form-error' }),
    field('Name', name, 'letters, digits, _ . - (up to 64)'),
    h('fieldset', {}, h('legend', {}, 'Queues'), picks,
      h('small', { class: 'muted' }, 'Workers drain the checked queues in this order: a later queue '
        + 'runs only what the ones before it leave. The default role with no queues consumes every '
        + 'queue, in rotation.'),
      h('div', { class: 'field-error', 'data-error-for': 'queues', role: 'alert' })),
    h('div', { class: 'actions' }, saveBtn, cancelEdit));

  function renderPicks(order) {
    chosen = order.filter((q) => queueNames.includes(q));
    const rest = queueNames.filter((q) => !chosen.includes(q));
    picks.replaceChildren(...[...chosen, ...rest].map((q) => {
      const box = h('input', { type: 'checkbox', name: 'queues', value: q, checked: chosen.includes(q) });
      box.addEventListener('change', () => renderPicks(box.checked
        ? [...chosen, q] : chosen.filter((c) => c !== q)));
      const at = chosen.indexOf(q);
      const up = at > 0 ? h('button', {
        type: 'button', class: 'move-up', 'aria-label': `Move ${q} up`,
        onclick: () => renderPicks([...chosen.slice(0, at - 1), q, chosen[at - 1], ...chosen.slice(at + 1)]),
      }, '↑') : null;
      return h('span', { class: 'check' }, h('label', {}, box, at >= 0 ? ` ${at + 1}. ${q}` : ` ${q}`), up);
    }));
  }

  function edit(role) {
    editing = role;
    clearFormErrors(form);
    heading.textContent = role ? `Edit role ${role.name}` : 'New role';
    name.value = role ? role.name : '';
    name.readOnly = Boolean(role);
    renderPicks(role ? role.queues : []);
    saveBtn.textContent = role ? 'Save changes' : 'Create role';
    cancelEdit.hidden = !role;
  }
  cancelEdit.addEventListener('click', () => edit(null));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFormErrors(form);
    const queues = [...chosen];
    const roleName = name.value.trim();
    try {
      if (editing) await put(`/roles/${encodeURIComponent(editing.name)}`, { queues });
      else await post('/roles', { name: roleName, queues });
    } catch (err) {
      showFormErrors(form, err);
      return;
    }
    box.replaceChildren(notice('ok', `Role ${roleName} ${editing ? 'saved' : 'created'}.`));
    edit(null);
    lastKey = '';
    await refresh();
  });

  async function remove(role) {
    if (!window.confirm(`Delete role ${role.name}?`)) return;
    await runAction(box, async () => {
      await del(`/roles/${encodeURIComponent(role.name)}`);
      return `Role ${role.name} deleted.`;
    });
    lastKey = '';
    await refresh();
  }

  root.append(h('h1', {}, 'Roles'), h('div', { class: 'split' }, h('div', {}, box, list), form));

  async function refresh() {
    const [roles, queues] = await Promise.all([get('/roles'), get('/queues')]);
    const key = JSON.stringify([roles, queues]);
    if (key === lastKey) return;
    lastKey = key;
    const names = queues.map((q) => q.name);
    if (names.join() !== queueNames.join()) {
      queueNames = names;
      renderPicks(chosen);
    }
    list.replaceChildren(table([
      { label: 'Role', cell: (r) => r.name },
      { label: 'Queues', cell: (r) => (r.queues.length
        ? r.queues.map((q) => h('span', { class: 'chip' }, q))
        : h('span', { class: 'muted' }, r.name === 'default' ? 'every queue' : 'none')) },
      { label: '', class: 'row-actions', cell: (r) => [
        h('button', { type: 'button', onclick: () => edit(r), 'aria-label': `Edit role ${r.name}` }, 'Edit'),
        h('button', { type: 'button', class: 'danger', onclick: () => remove(r), 'aria-label': `Delete role ${r.name}` }, 'Delete'),
      ] },
    ], roles, { empty: 'No roles.', rowAttrs: (r) => ({ dataset: { role: r.name } }) }));
  }

  return { refresh };
}
