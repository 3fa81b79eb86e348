// One task: every field, params and result, its error history, a live status, cancel and resubmit.
// The page follows the task's event stream (/task-status/{id}/stream) while it is open, so a change
// shows at once; the shell's periodic refresh only reads the task while no stream is open.

import { follow, get, post } from '../api.js';
import {
  CANCELLABLE, DEAD_LETTER, duration, eventBadge, h, json, notice, progressBar, statusBadge, table, TERMINAL, time,
} from '../dom.js';
import { runAction } from './shared.js';

export const title = 'Task';

const TIME_FIELDS = ['submitted_at', 'run_at', 'started_at', 'last_heartbeat_at', 'completed_at'];

function fieldRows(t) {
  const running = t.status === 'started' && t.started_at
    ? duration((Date.now() - Date.parse(t.started_at)) / 1000) : null;
  const rows = [
    ['id', h('span', { class: 'mono' }, t.id)],
    ['name', t.name],
    ['version', String(t.version)],
    ['queue', h('a', { href: `#/tasks?queue=${encodeURIComponent(t.queue)}` }, t.queue)],
    ['priority', String(t.priority ?? 0)],
    ['concurrency_key', t.concurrency_key ? h('span', { class: 'mono' }, t.concurrency_key) : h('span', { class: 'muted' }, '—')],
    ['waiting_for', t.waiting_for
      ? h('span', {}, 'a free slot of concurrency key ', h('span', { class: 'mono' }, t.waiting_for))
      : h('span', { class: 'muted' }, '—')],
    ['status', [statusBadge(t.status), running ? h('span', { class: 'muted' }, ` running for ${running}`) : null]],
    ['progress', t.progress
      ? [progressBar(t.progress), t.progress.attempt !== t.retry_attempt
        ? h('span', { class: 'muted' }, ` (attempt ${t.progress.attempt})`) : null]
      : h('span', { class: 'muted' }, '—')],
    ['correlation_id', t.correlation_id
      ? h('a', { class: 'mono', href: `#/tasks?correlation_id=${encodeURIComponent(t.correlation_id)}` }, t.correlation_id)
      : h('span', { class: 'muted' }, '—')],
    ...TIME_FIELDS.map((f) => [f, time(t[f])]),
    ['retry_attempt', String(t.retry_attempt)],
    ['stall_count', String(t.stall_count)],
    ['worker_id', t.worker_id ? h('span', { class: 'mono' }, t.worker_id) : h('span', { class: 'muted' }, '—')],
    ['cancel_requested', String(t.cancel_requested)],
    ['cancel_reason', t.cancel_reason || h('span', { class: 'muted' }, '—')],
    ['dead_lettered', String(t.dead_lettered)],
    ['error', t.error || h('span', { class: 'muted' }, '—')],
  ];
  return h('dl', { class: 'fields' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', { dataset: { field: k } }, v)]));
}

export function mount(root, { id }) {
  let task = null;
  let lastKey = '';
  let eventsKey = '';
  const timeline = h('div', { class: 'timeline' });
  const box = h('div', { class: 'result' });
  const badge = h('span', { class: 'live-status' });
  const body = h('div');
  const reset = h('input', { type: 'checkbox', name: 'reset_retry_count', checked: true });
  const cancelBtn = h('button', { type: 'button', class: 'danger' }, 'Cancel task');
  const copyBtn = h('button', { type: 'button', title: 'Submit a new task with the same name, version, queue, priority and params' }, 'Submit a copy');
  const dlqBtn = h('button', { type: 'button', class: 'primary' }, 'Resubmit from dead letter queue');
  const dlqControls = h('span', { class: 'inline' }, dlqBtn, h('label', { class: 'check' }, reset, 'reset retry count'));

  cancelBtn.addEventListener('click', async () => {
    if (!window.confirm(`Cancel task ${id}?`)) return;
    await runAction(box, async () => {
      const answer = await post(`/task/${encodeURIComponent(id)}/cancel`);
      return answer.outcome === 'requested'
        ? 'Cancellation requested: the worker stops the task at its next await.' : 'Task cancelled.';
    });
    await refresh();
  });
  copyBtn.addEventListener('click', () => runAction(box, async () => {
    const made = await post('/tasks', {
      name: task.name, version: task.version, queue: task.queue, priority: task.priority ?? 0, params: task.params,
    });
    location.hash = `#/task/${encodeURIComponent(made.id)}`;
    return '';
  }));
  dlqBtn.addEventListener('click', async () => {
    await runAction(box, async () => {
      const answer = await post('/dead-letter-queue/resubmit', { task_ids: [id], reset_retry_count: reset.checked });
      const r = answer.results[0];
      if (r.outcome !== 'resubmitted') throw new Error(`Not resubmitted: ${r.outcome.replaceAll('_', ' ')} (${r.status}).`);
      return 'Resubmitted from the dead letter queue.';
    });
    await refresh();
  });

  root.append(
    h('h1', {}, 'Task ', h('span', { class: 'mono' }, id), ' ', badge),
    h('div', { class: 'toolbar' }, cancelBtn, copyBtn, dlqControls),
    box, body,
  );

  let streaming = false;
  const stop = new AbortController();
  // The shell has no unmount hook: the stream stops once the page has left the document.
  const watchdog = setInterval(() => {
    if (!root.isConnected) { stop.abort(); clearInterval(watchdog); }
  }, 1000);

  async function stream() {
    if (streaming || stop.signal.aborted || (task && TERMINAL.includes(task.status))) return;
    streaming = true;
    try {
      await follow(`/task-status/${encodeURIComponent(id)}/stream`, (name, data) => {
        if (name === 'task') show(data);
      }, stop.signal);
    } catch {
      // The periodic refresh reads the task meanwhile and opens the stream again.
    } finally {
      streaming = false;
    }
  }

  async function refresh() {
    if (streaming) return;
    try {
      show(await get(`/task-status/${encodeURIComponent(id)}`));
    } catch (err) {
      if (err.status === 404 || err.status === 422) {
        body.replaceChildren(notice('error', err.message));
        badge.replaceChildren();
        [cancelBtn, copyBtn, dlqControls].forEach((el) => { el.hidden = true; });
        return;
      }
      throw err;
    }
    stream();
  }

  function show(fresh) {
    task = fresh;
    cancelBtn.hidden = !CANCELLABLE.includes(task.status);
    cancelBtn.disabled = task.cancel_requested;
    copyBtn.hidden = false;
    dlqControls.hidden = !(task.dead_lettered && DEAD_LETTER.includes(task.status));
    const key = JSON.stringify(task);
    if (key === lastKey && TERMINAL.includes(task.status)) return;
    lastKey = key;
    loadEvents();
    badge.replaceChildren(statusBadge(task.status));
    body.replaceChildren(
      h('section', { class: 'split' },
        h('div', {}, h('h2', {}, 'Fields'), fieldRows(task)),
        h('div', {},
          h('h2', {}, 'Params'), json(task.params),
          h('h2', {}, 'Result'), json(task.result))),
      h('section', {}, h('h2', {}, 'Events'), timeline),
      h('section', {},
        h('h2', {}, `Attempts and errors (${task.errors.length})`),
        table([
          { label: 'Attempt', class: 'num', cell: (e) => e.attempt },
          { label: 'At', cell: (e) => time(e.at) },
          { label: 'Exception', cell: (e) => h('span', { class: 'mono' }, e.exception_type) },
          { label: 'Message', cell: (e) => h('span', { class: 'pre' }, e.message) },
        ], task.errors, { empty: 'No errors recorded.' })),
    );
  }

  // The timeline is read again whenever the record changed (each event changes it).
  async function loadEvents() {
    let answer;
    try {
      answer = await get(`/tasks/${encodeURIComponent(id)}/events`);
    } catch (err) {
      timeline.replaceChildren(notice('error', err.message));
      return;
    }
    const key = JSON.stringify(answer.events);
    if (key === eventsKey) return;
    eventsKey = key;
    timeline.replaceChildren(answer.events.length === 0
      ? h('p', { class: 'muted' }, 'No events recorded.')
      : h('ol', { class: 'events' }, answer.events.map((e) => h('li', { dataset: { event: e.type } },
        time(e.at), ' ', eventBadge(e.type),
        h('span', { class: 'muted' }, ` attempt ${e.attempt}`),
        e.worker_id ? h('span', { class: 'mono muted' }, ` · ${e.worker_id}`) : null,
        e.detail ? h('span', { class: 'pre detail' }, ` ${e.detail}`) : null))));
  }

  return { refresh };
}
