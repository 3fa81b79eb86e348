// Building the DOM from data, safely: every value becomes a text node or an attribute, never markup.

const SVG_NS = 'http://www.w3.org/2000/svg';
const FORBIDDEN = new Set(['innerHTML', 'outerHTML', 'srcdoc', 'style']);

function setAttributes(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (FORBIDDEN.has(key) || /^on[a-z]/.test(key) && typeof value !== 'function') {
      throw new Error(`h(): refusing attribute ${key}`);
    }
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.setAttribute('class', [].concat(value).filter(Boolean).join(' '));
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'value' || key === 'checked') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function appendChildren(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h('a', {href: '#/x', class: 'link', onclick: fn}, 'text', otherNode, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  return appendChildren(el, children);
}

/** An SVG element, the same way. */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttributes(el, attrs);
  return appendChildren(el, children);
}

// -- statuses ----------------------------------------------------------------------------------

export const STATUSES = ['submitted', 'scheduled', 'started', 'completed', 'failed', 'cancelled', 'stalled',
  'dropped'];
export const TERMINAL = ['completed', 'failed', 'cancelled', 'stalled', 'dropped'];
export const CANCELLABLE = ['submitted', 'scheduled', 'started'];
export const DEAD_LETTER = ['failed', 'stalled'];
/** Every event type of the event log, in lifecycle order (the models' EventKind). */
export const EVENT_TYPES = ['submitted', 'scheduled', 'promoted', 'started', 'heartbeat_stale', 'retried',
  'completed', 'failed', 'cancelled', 'cancel_requested', 'stalled', 'recovered', 'resubmitted', 'dropped',
  'progress'];
/** Event types that end a task badly, an attempt, or its worker (shown in warning colours). */
const BAD_EVENTS = ['failed', 'stalled', 'heartbeat_stale', 'dropped'];
const WARN_EVENTS = ['retried', 'recovered', 'cancel_requested', 'cancelled'];

export function eventBadge(type) {
  const tone = BAD_EVENTS.includes(type) ? 'bad' : WARN_EVENTS.includes(type) ? 'warn' : (type === 'completed' ? 'good' : null);
  return h('span', { class: ['badge', 'event', tone], dataset: { event: String(type) } }, String(type).replaceAll('_', ' '));
}

/** A progress report ({current, total, message}) as a bar (a <progress> when the total is known). */
export function progressBar(p) {
  if (!p) return h('span', { class: 'muted' }, '—');
  const known = p.total !== null && p.total !== undefined && p.total > 0;
  const share = known ? Math.min(1, Math.max(0, p.current / p.total)) : null;
  const label = known ? `${p.current} / ${p.total} (${Math.round(share * 100)}%)` : String(p.current);
  return h('span', { class: 'progress-line' },
    known ? h('progress', { max: '1', value: String(share), 'aria-label': `progress ${label}` }) : null,
    h('span', { class: 'progress-text' }, label, p.message ? ` · ${p.message}` : ''));
}

export function statusBadge(status) {
  const known = STATUSES.includes(status) ? status : 'unknown';
  return h('span', { class: ['badge', `status-${known}`], dataset: { status: String(status) } }, status);
}

// -- formatting --------------------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, '0');

/** A timestamp in local time (the ISO value in its tooltip); '—' when absent. */
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return h('time', { datetime: iso, title: iso }, text);
}

export function clock(iso) {
  const d = new Date(iso);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** 0.4s, 12.3s, 4m 05s, 2h 03m, 3d 04h. */
export function duration(seconds) {
  const s = Math.max(0, Number(seconds) || 0);
  if (s < 60) return `${s.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(Math.floor(s % 60))}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d ${pad(Math.floor((s % 86400) / 3600))}h`;
}

/** Pretty-printed JSON in a <pre> (as text). */
export function json(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value === undefined ? null : value, null, 2));
}

export function taskLink(id) {
  return h('a', { href: `#/task/${encodeURIComponent(id)}`, class: 'mono' }, id);
}

// -- tables ------------------------------------------------------------------------------------

/**
 * A table: columns = [{label, cell: (row) => node|text, class}]; `empty` shows when rows is empty.
 * `rowAttrs(row)` adds attributes to each <tr>.
 */
export function table(columns, rows, { empty = 'Nothing here.', rowAttrs } = {}) {
  // The wrapper scrolls sideways when the table is wider than the page (a phone), so the page
  // itself never does.
  return h('div', { class: 'table-scroll' }, h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.class }, c.label)))),
    h('tbody', {},
      rows.length === 0
        ? h('tr', {}, h('td', { colspan: columns.length, class: 'empty' }, empty))
        : rows.map((row) => h('tr', rowAttrs ? rowAttrs(row) : {},
          columns.map((c) => h('td', { class: c.class }, c.cell(row))))))));
}

/**
 * Row selection for a table of items with ids: a checkbox column, "select all on this page",
 * and the set of selected ids (kept across re-renders; ids no longer listed are dropped).
 */
export class Selection {
  constructor(onChange) {
    this.ids = new Set();
    this.onChange = onChange || (() => {});
  }

  keepOnly(ids) {
    const listed = new Set(ids);
    for (const id of [...this.ids]) if (!listed.has(id)) this.ids.delete(id);
  }

  clear() {
    this.ids.clear();
    this.onChange();
  }

  column(rows) {
    const all = h('input', {
      type: 'checkbox',
      'aria-label': 'Select all on this page',
      checked: rows.length > 0 && rows.every((r) => this.ids.has(r.id)),
      onchange: (e) => {
        for (const r of rows) e.target.checked ? this.ids.add(r.id) : this.ids.delete(r.id);
        e.target.closest('table').querySelectorAll('tbody input[type=checkbox]')
          .forEach((box) => { box.checked = e.target.checked; });
        this.onChange();
      },
    });
    return {
      label: all,
      class: 'pick',
      cell: (row) => h('input', {
        type: 'checkbox',
        'aria-label': `Select ${row.id}`,
        checked: this.ids.has(row.id),
        onchange: (e) => {
          e.target.checked ? this.ids.add(row.id) : this.ids.delete(row.id);
          this.onChange();
        },
      }),
    };
  }
}

/** Previous/next buttons over cursor pages; `load()` is called after a move. */
export class Pager {
  constructor(load) {
    this.cursors = [null];
    this.load = load;
    this.next = null;
    this.el = h('div', { class: 'pager' });
  }

  get cursor() {
    return this.cursors[this.cursors.length - 1];
  }

  reset() {
    this.cursors = [null];
  }

  render(page) {
    this.next = page.next_cursor;
    const shown = page.tasks.length;
    const total = page.total === null || page.total === undefined ? '' : ` of ${page.total}`;
    this.el.replaceChildren(
      h('button', {
        type: 'button', disabled: this.cursors.length === 1,
        onclick: () => { this.cursors.pop(); this.load(); },
      }, '← Previous'),
      h('span', { class: 'muted' }, `Page ${this.cursors.length} · ${shown} shown${total}`),
      h('button', {
        type: 'button', disabled: !this.next,
        onclick: () => { this.cursors.push(this.next); this.load(); },
      }, 'Next →'),
    );
    return this.el;
  }
}

// -- messages and forms ------------------------------------------------------------------------

/** A message line: kind is 'ok', 'error' or 'info'. */
export function notice(kind, ...text) {
  return h('p', { class: ['notice', kind], role: kind === 'error' ? 'alert' : 'status' }, ...text);
}

/** Summarise per-id outcomes ([{outcome}]) as "2 cancelled, 1 conflict". */
export function outcomeSummary(results) {
  const counts = {};
  for (const r of results) counts[r.outcome] = (counts[r.outcome] || 0) + 1;
  return Object.entries(counts).map(([k, n]) => `${n} ${k.replaceAll('_', ' ')}`).join(', ') || 'nothing to do';
}

/**
 * Show an API error on a form: 422 field errors next to the field named by the last part of their
 * `loc` (elements with data-error-for=NAME), anything else in the form's `.form-error`.
 */
export function showFormErrors(form, err) {
  clearFormErrors(form);
  const general = [];
  for (const e of err.fieldErrors) {
    const loc = (e.loc || []).filter((p) => p !== 'body');
    const slot = loc.length ? form.querySelector(`[data-error-for="${CSS.escape(String(loc[0]))}"]`) : null;
    if (slot) slot.append(h('span', {}, e.msg, ' '));
    else general.push(loc.length ? `${loc.join('.')}: ${e.msg}` : e.msg);
  }
  if (!err.fieldErrors.length) general.push(err.message);
  const box = form.querySelector('.form-error');
  if (box && general.length) box.replaceChildren(notice('error', general.join('; ')));
}

export function clearFormErrors(form) {
  form.querySelectorAll('[data-error-for], .form-error').forEach((el) => el.replaceChildren());
}

/** A labelled form field: the input, then a slot for its 422 message. */
export function field(label, input, hint) {
  const name = input.getAttribute('name');
  if (!input.id) input.id = `f-${name}`;
  return h('div', { class: 'field' },
    h('label', { for: input.id }, label),
    input,
    hint ? h('small', { class: 'muted' }, hint) : null,
    h('div', { class: 'field-error', 'data-error-for': name, role: 'alert' }));
}
