// One workflow run: its status, its graph drawn by hand in SVG (nodes in columns by depth, coloured
// by status, each a link to its task; error edges dashed), the nodes' table, and cancel.

import { get, post } from '../api.js';
import { h, notice, svg, table, taskLink, time } from '../dom.js';
import { runAction } from './shared.js';

export const title = 'Workflow run';

const NODE_W = 170;
const NODE_H = 46;
const GAP_X = 70;
const GAP_Y = 18;
const PAD = 16;
/** Runs with more nodes than this are shown as a table only (a drawing would be unreadable). */
const MAX_DRAWN = 400;

export function workflowBadge(status) {
  return h('span', { class: ['badge', `wf-${status}`], dataset: { status } }, status);
}

/** Column of each node: 0 for a node without parents, else one more than its deepest parent. */
function depths(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map();
  const visit = (n, seen) => {
    if (depth.has(n.id)) return depth.get(n.id);
    if (seen.has(n.id)) return 0; // a cycle cannot be stored; stay safe anyway
    seen.add(n.id);
    const parents = [...n.after, ...n.on_error_of].map((p) => byId.get(p)).filter(Boolean);
    const d = parents.length ? 1 + Math.max(...parents.map((p) => visit(p, seen))) : 0;
    depth.set(n.id, d);
    return d;
  };
  nodes.forEach((n) => visit(n, new Set()));
  return depth;
}

function cut(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** The run as an SVG graph: a column per depth, edges from the right of a parent to the left of a child. */
export function drawGraph(nodes) {
  const depth = depths(nodes);
  const columns = [];
  for (const n of nodes) (columns[depth.get(n.id)] ||= []).push(n);
  const at = new Map();
  columns.forEach((column, c) => column.forEach((n, r) => at.set(n.id, {
    x: PAD + c * (NODE_W + GAP_X), y: PAD + r * (NODE_H + GAP_Y),
  })));
  const rows = Math.max(...columns.map((c) => c.length));
  const width = PAD * 2 + columns.length * NODE_W + (columns.length - 1) * GAP_X;
  const height = PAD * 2 + rows * NODE_H + (rows - 1) * GAP_Y;
  const edges = [];
  for (const n of nodes) {
    const to = at.get(n.id);
    for (const [parents, kind] of [[n.after, 'success'], [n.on_error_of, 'error']]) {
      for (const p of parents) {
        const from = at.get(p);
        if (!from) continue;
        const x1 = from.x + NODE_W;
        const y1 = from.y + NODE_H / 2;
        const x2 = to.x;
        const y2 = to.y + NODE_H / 2;
        const mid = (x1 + x2) / 2;
        edges.push(svg('path', {
          d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
          class: ['wf-edge', `wf-edge-${kind}`], 'marker-end': 'url(#wf-arrow)',
          dataset: { from: p, to: n.id, kind },
        }));
      }
    }
  }
  const boxes = nodes.map((n) => {
    const { x, y } = at.get(n.id);
    const status = n.status || 'waiting';
    return svg('a', { href: `#/task/${encodeURIComponent(n.task_id)}`, class: ['wf-node', `wf-node-${status}`],
      dataset: { node: n.id, status } },
    svg('title', {}, `${n.id} · ${n.name} · ${status}`),
    svg('rect', { x, y, width: NODE_W, height: NODE_H, rx: 8 }),
    svg('text', { x: x + 10, y: y + 19, class: 'wf-node-id' }, cut(n.id, 22)),
    svg('text', { x: x + 10, y: y + 36, class: 'wf-node-meta' }, cut(`${n.name} · ${status}`, 26)));
  });
  return svg('svg', {
    viewBox: `0 0 ${width} ${height}`, width, height, class: 'wf-graph', role: 'img',
    'aria-label': `Workflow graph of ${nodes.length} nodes`,
  },
  svg('defs', {}, svg('marker', {
    id: 'wf-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto',
  }, svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'wf-arrow' }))),
  edges, boxes);
}

export function mount(root, { id }) {
  const heading = h('h1', {}, 'Workflow ', h('span', { class: 'mono' }, id), h('span', { class: 'live-status' }));
  const facts = h('div');
  const picture = h('div', { class: 'wf-scroll' });
  const nodesTable = h('div');
  const box = h('div', { class: 'result' });
  const cancel = h('button', { type: 'button', class: 'danger', hidden: true }, 'Cancel run');
  cancel.addEventListener('click', async () => {
    if (!window.confirm('Cancel every node of this run not yet ended?')) return;
    await runAction(box, async () => {
      await post(`/workflows/${encodeURIComponent(id)}/cancel`);
      return 'Cancel requested: nodes not yet ended are cancelled, running ones asked to stop.';
    });
    await refresh();
  });
  const legend = h('ul', { class: 'legend' },
    ['waiting', 'submitted', 'started', 'completed', 'failed', 'stalled', 'cancelled'].map((s) => h('li', {},
      h('span', { class: ['swatch', `wf-swatch-${s}`] }), s)),
    h('li', {}, h('span', { class: 'swatch wf-swatch-error-edge' }), 'error edge'));

  async function refresh() {
    let run;
    try {
      run = await get(`/workflows/${encodeURIComponent(id)}`);
    } catch (err) {
      if (err.status !== 404 && err.status !== 422) throw err;
      facts.replaceChildren(notice('error', `No workflow run ${id}.`));
      return;
    }
    heading.querySelector('.live-status').replaceChildren(workflowBadge(run.status));
    cancel.hidden = run.status !== 'running';
    facts.replaceChildren(h('dl', { class: 'fields' },
      h('dt', {}, 'Name'), h('dd', {}, run.name || '—'),
      h('dt', {}, 'Queue'), h('dd', {}, run.queue),
      h('dt', {}, 'Nodes'), h('dd', {}, String(run.nodes.length)),
      h('dt', {}, 'Created'), h('dd', {}, time(run.created_at)),
      h('dt', {}, 'Ended'), h('dd', {}, time(run.completed_at)),
      h('dt', {}, 'Failed node'), h('dd', {}, run.failed_node || '—')));
    picture.replaceChildren(run.nodes.length > MAX_DRAWN
      ? notice('info', `${run.nodes.length} nodes: too many to draw; see the table below.`)
      : drawGraph(run.nodes));
    nodesTable.replaceChildren(table([
      { label: 'Node', cell: (n) => n.id },
      { label: 'Task', cell: (n) => [taskLink(n.task_id), h('span', { class: 'muted' }, ` ${n.name}`)] },
      { label: 'Status', cell: (n) => h('span', { class: ['badge', `status-${n.status || 'waiting'}`] }, n.status || 'waiting') },
      { label: 'After', cell: (n) => n.after.join(', ') || '—' },
      { label: 'On error of', cell: (n) => n.on_error_of.join(', ') || '—' },
    ], run.nodes, { rowAttrs: (n) => ({ dataset: { node: n.id } }) }));
  }

  root.append(heading, h('div', { class: 'actions' }, cancel, h('a', { href: '#/workflows' }, '← All runs')), box,
    facts, h('h2', {}, 'Graph'), legend, picture, h('h2', {}, 'Nodes'), nodesTable);
  return { refresh };
}
