// Overview: per-queue counts, tasks per status, throughput per minute, live workers.

import { get } from '../api.js';
import { clock, duration, h, STATUSES, statusBadge, svg, table, TERMINAL } from '../dom.js';

export const title = 'Overview';

const MINUTES = 15;

function card(label, value, href) {
  const body = [h('span', { class: 'card-value' }, String(value)), h('span', { class: 'card-label' }, label)];
  return href ? h('a', { class: 'card', href }, body) : h('div', { class: 'card' }, body);
}

/** Stacked bars: one per minute, a segment per terminal status. */
function throughputChart(points) {
  const width = 640;
  const height = 160;
  const left = 34;
  const bottom = 20;
  const top = 8;
  const max = Math.max(1, ...points.map((p) => p.total));
  const slot = (width - left) / Math.max(points.length, 1);
  const scale = (height - bottom - top) / max;
  const bars = points.map((p, i) => {
    let y = height - bottom;
    const segments = TERMINAL.filter((s) => p.counts[s]).map((status) => {
      const tall = p.counts[status] * scale;
      y -= tall;
      return svg('rect', {
        x: (left + i * slot + slot * 0.15).toFixed(1), y: y.toFixed(1),
        width: (slot * 0.7).toFixed(1), height: Math.max(tall, 0.5).toFixed(1), class: `seg-${status}`,
      });
    });
    const summary = TERMINAL.filter((s) => p.counts[s]).map((s) => `${p.counts[s]} ${s}`).join(', ') || 'none';
    return svg('g', { class: 'bar' },
      svg('title', {}, `${clock(p.minute)}: ${summary}`),
      svg('rect', { x: (left + i * slot).toFixed(1), y: top, width: slot.toFixed(1), height: height - bottom - top, class: 'hit' }),
      segments);
  });
  const labels = points.length ? [0, Math.floor(points.length / 2), points.length - 1] : [];
  return svg('svg', {
    viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img',
    'aria-label': `Tasks finished per minute over the last ${points.length} minutes`,
  },
  svg('line', { x1: left, x2: width, y1: height - bottom, y2: height - bottom, class: 'axis' }),
  svg('line', { x1: left, x2: width, y1: top, y2: top, class: 'grid-line' }),
  svg('text', { x: left - 6, y: top + 4, class: 'tick', 'text-anchor': 'end' }, String(max)),
  svg('text', { x: left - 6, y: height - bottom, class: 'tick', 'text-anchor': 'end' }, '0'),
  labels.map((i) => svg('text', {
    x: (left + i * slot + slot / 2).toFixed(1), y: height - 5, class: 'tick', 'text-anchor': 'middle',
  }, clock(points[i].minute))),
  bars);
}

function legend() {
  return h('ul', { class: 'legend' }, TERMINAL.map((s) => h('li', {}, h('span', { class: ['swatch', `seg-${s}`] }), s)));
}

function render(stats) {
  const st = stats.statuses;
  const finished = stats.throughput.reduce((n, p) => n + p.total, 0);
  const ready = stats.queues.reduce((n, q) => n + q.ready, 0);
  const now = Date.parse(stats.now);
  return [
    h('section', { class: 'cards' },
      card('workers alive', stats.workers_alive),
      card('ready', ready, '#/tasks?status=submitted'),
      card('running', st.started || 0, '#/active'),
      card('scheduled', st.scheduled || 0, '#/scheduled'),
      card('failed', st.failed || 0, '#/tasks?status=failed'),
      card('dead-lettered', stats.dead_lettered, '#/dlq'),
      card(`finished in ${MINUTES} min`, finished)),
    h('section', {},
      h('h2', {}, 'Throughput'),
      h('p', { class: 'muted' }, `${finished} tasks reached a terminal status in the last ${stats.throughput.length} minutes`
        + ` (${(finished / Math.max(stats.throughput.length, 1)).toFixed(1)} per minute).`),
      throughputChart(stats.throughput),
      legend()),
    h('section', {},
      h('h2', {}, 'Queues'),
      table([
        { label: 'Queue', cell: (q) => [h('a', { href: `#/tasks?queue=${encodeURIComponent(q.name)}` }, q.name),
          q.configured ? null : h('span', { class: 'badge warn', title: 'deleted, but still holds task records' }, 'not configured')] },
        { label: 'Ready', class: 'num', cell: (q) => q.ready },
        { label: 'Running', class: 'num', cell: (q) => (q.max_concurrent ? `${q.running} / ${q.max_concurrent}` : q.running) },
        { label: 'Scheduled', class: 'num', cell: (q) => q.scheduled },
        { label: 'Dead-lettered', class: 'num', cell: (q) => (q.dead_lettered
          ? h('a', { href: `#/dlq?queue=${encodeURIComponent(q.name)}` }, String(q.dead_lettered)) : '0') },
        { label: `Completed (${MINUTES}m)`, class: 'num', cell: (q) => q.recent.completed || 0 },
        { label: `Failed (${MINUTES}m)`, class: 'num', cell: (q) => q.recent.failed || 0 },
      ], stats.queues, { empty: 'No queues.', rowAttrs: (q) => ({ dataset: { queue: q.name } }) })),
    h('section', { class: 'split' },
      h('div', {},
        h('h2', {}, 'Tasks by status'),
        table([
          { label: 'Status', cell: (s) => h('a', { href: `#/tasks?status=${s}` }, statusBadge(s)) },
          { label: 'Tasks', class: 'num', cell: (s) => st[s] || 0 },
        ], STATUSES)),
      h('div', {},
        h('h2', {}, `Workers (${stats.workers_alive} alive)`),
        table([
          { label: 'Worker', cell: (w) => h('span', { class: 'mono' }, w.id) },
          { label: 'Role', cell: (w) => w.role },
          { label: 'Queues', cell: (w) => w.queues.join(', ') || '—' },
          { label: 'Running', class: 'num', cell: (w) => `${w.running} / ${w.slots}` },
          { label: 'Processed', class: 'num', cell: (w) => w.processed },
          { label: 'Up', cell: (w) => h('span', { title: w.started_at }, duration((now - Date.parse(w.started_at)) / 1000)) },
          { label: 'Last seen', cell: (w) => h('span', { title: w.last_seen_at }, `${duration((now - Date.parse(w.last_seen_at)) / 1000)} ago`) },
        ], stats.workers, {
          empty: 'No worker has reported in the last few refresh intervals.',
          rowAttrs: (w) => ({ dataset: { worker: w.id } }),
        }))),
  ];
}

export function mount(root) {
  const body = h('div', { class: 'overview' });
  root.append(h('h1', {}, 'Overview'), body);
  return {
    async refresh() {
      body.replaceChildren(...render(await get('/stats', { minutes: MINUTES })));
    },
  };
}
