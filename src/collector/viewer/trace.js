// One trace as a waterfall: the span tree, a bar per span on a shared time
// axis, and the selected span's details.

import { $, el, fetchJson, formatDuration, formatTime, incompleteMark, loadKnownServices, plural, serviceChip,
  serviceColour, setStatus, setViewServices } from './common.js';
import { buildTree, calledService, endpointText, flatten, isError, serviceOf, summarize } from './spans.js';

// The span row whose details are shown (a tree node from flatten()).
let selectedRow = null;

export async function showTrace(traceId) {
  setStatus('Loading trace…');
  $('trace-title').textContent = 'Trace ' + traceId;
  $('wf-rows').replaceChildren();
  $('trace-meta').replaceChildren();
  $('trace-legend').replaceChildren();
  try {
    const [spans] = await Promise.all([
      fetchJson('/api/v2/trace/' + encodeURIComponent(traceId)), loadKnownServices()]);
    renderTrace(spans);
    setStatus(plural(spans.length, 'span'));
  } catch (error) {
    const text = error.status === 404 ? 'Trace ' + traceId + ' was not found (it may have been evicted).' : error.message;
    $('wf-rows').replaceChildren(el('p', { class: 'empty', text }));
    setStatus(error.status === 404 ? 'Not found' : 'Could not load the trace', true);
  }
}

function renderTrace(spans) {
  const summary = summarize(spans);
  setViewServices(summary.services.concat(spans.map(calledService).filter(Boolean)));
  const rows = flatten(buildTree(spans));
  const start = summary.start;
  const total = Math.max(summary.duration, 1);
  $('trace-title').replaceChildren(serviceChip(serviceOf(summary.root)), ' ',
    el('span', { text: summary.root.name || '(unnamed)' }),
    ...(summary.incomplete ? [incompleteMark(summary.incomplete)] : []));
  const depth = rows.reduce((max, node) => Math.max(max, node.depth + 1), 0);
  $('trace-meta').replaceChildren(
    meta('Trace ID', summary.traceId, 'mono'), meta('Duration', formatDuration(summary.duration)),
    meta('Spans', String(spans.length)), meta('Depth', String(depth)),
    meta('Services', String(summary.services.length)), meta('Started', formatTime(summary.start)),
    ...(summary.errors ? [meta('Errors', String(summary.errors), 'error-text')] : []));
  const legend = document.createDocumentFragment();
  for (const name of summary.services) legend.append(serviceChip(name));
  $('trace-legend').replaceChildren(legend);
  renderAxis(total);
  const fragment = document.createDocumentFragment();
  for (const node of rows) fragment.append(spanRow(node, start, total));
  const container = $('wf-rows');
  selectedRow = null;
  container.replaceChildren(fragment);
  container.onclick = (event) => onRowClick(event, rows, start);
  container.onkeydown = (event) => onRowKey(event, rows, start);
  if (rows.length) select(rows[0], start);
}

function meta(label, value, cls) {
  return el('span', { class: 'meta' }, el('span', { class: 'meta-label', text: label }),
    el('span', { class: 'meta-value ' + (cls || ''), text: value }));
}

function renderAxis(total) {
  const fragment = document.createDocumentFragment();
  for (let i = 0; i <= 4; i++) {
    const cls = 'tick' + (i === 4 ? ' last' : '') + (i % 2 ? ' minor' : '');
    const tick = el('span', { class: cls, text: formatDuration((total * i) / 4) });
    tick.style.left = (i * 25) + '%';
    fragment.append(tick);
  }
  $('wf-axis').replaceChildren(fragment);
}

function spanRow(node, start, total) {
  const span = node.span;
  const service = serviceOf(span);
  const colour = serviceColour(service);
  const error = isError(span);
  const offset = span.timestamp ? ((span.timestamp - start) / total) * 100 : 0;
  const width = span.duration ? (span.duration / total) * 100 : 0;
  const label = el('div', { class: 'span-label' },
    node.children.length
      ? el('button', { class: 'toggle', type: 'button', 'aria-label': 'Collapse', 'aria-expanded': 'true', text: '▾' })
      : el('span', { class: 'toggle-space' }),
    el('span', { class: 'svc-bar' }),
    el('span', { class: 'svc', text: service }),
    el('span', { class: 'span-name', title: span.name || null, text: span.name || '(unnamed)' }),
    remoteLabel(calledService(span)),
    span.kind ? el('span', { class: 'kind', text: span.kind.toLowerCase() }) : null,
    span.shared ? el('span', { class: 'kind shared', title: 'B3 shared span: it has the span id of the span above it, the other side of the same call', text: 'shared' }) : null,
    node.orphan ? el('span', { class: 'orphan', title: 'Its parent span ' + span.parentId + ' is not in this trace', text: 'missing parent' }) : null,
    error ? el('span', { class: 'err-mark', title: 'Error', text: '!' }) : null);
  label.style.paddingLeft = (8 + Math.min(node.depth, 24) * 14) + 'px';
  label.querySelector('.svc-bar').style.background = colour;
  const bar = el('div', { class: 'span-bar' + (span.duration ? '' : ' instant') });
  bar.style.left = Math.min(offset, 100) + '%';
  bar.style.width = Math.min(width, 100 - Math.min(offset, 100)) + '%';
  if (!error) bar.style.background = colour;
  // The timeline keeps a right margin wide enough for this label.
  const duration = el('span', { class: 'span-dur', text: formatDuration(span.duration) });
  duration.style.left = Math.min(offset + width, 100) + '%';
  return el('div', {
    class: 'span-row' + (error ? ' error' : '') + (node.orphan ? ' orphan-row' : ''),
    role: 'treeitem', tabindex: '-1', 'aria-level': String(node.depth + 1),
    'data-row': String(node.row), 'data-span-id': span.id, 'data-span-name': span.name || '',
    'data-service': service, 'data-depth': String(node.depth), 'data-shared': span.shared ? 'true' : null,
  }, label, el('div', { class: 'span-timeline' }, bar, duration));
}

// "→ user-service" on a client row, with the called service's colour.
function remoteLabel(remote) {
  if (!remote) return null;
  const dot = el('span', { class: 'dot' });
  dot.style.background = serviceColour(remote);
  return el('span', { class: 'remote', title: 'Calls ' + remote, 'data-remote': remote }, '→ ', dot, remote);
}

function onRowClick(event, rows, start) {
  const rowElement = event.target.closest('.span-row');
  if (!rowElement) return;
  const node = rows[Number(rowElement.dataset.row)];
  if (event.target.closest('.toggle')) toggle(node, rows, rowElement);
  else select(node, start);
}

function onRowKey(event, rows, start) {
  if (!selectedRow) return;
  const visible = (node) => !$('wf-rows').children[node.row].hidden;
  let at = selectedRow.row;
  const step = event.key === 'ArrowDown' ? 1 : event.key === 'ArrowUp' ? -1 : 0;
  if (!step) return;
  event.preventDefault();
  do { at += step; } while (at >= 0 && at < rows.length && !visible(rows[at]));
  if (at >= 0 && at < rows.length) select(rows[at], start, true);
}

// Collapses or expands a subtree: its rows are the next `size - 1` rows.
function toggle(node, rows, rowElement) {
  node.collapsed = !node.collapsed;
  const button = rowElement.querySelector('.toggle');
  button.textContent = node.collapsed ? '▸' : '▾';
  button.setAttribute('aria-expanded', String(!node.collapsed));
  const elements = $('wf-rows').children;
  // Depth-first order puts every parent before its children.
  for (let i = node.row + 1; i < node.row + node.size; i++) {
    const child = rows[i];
    child.hiddenByAncestor = child.parent.collapsed || child.parent.hiddenByAncestor;
    elements[i].hidden = child.hiddenByAncestor;
  }
}

function select(node, start, scroll) {
  const elements = $('wf-rows').children;
  if (selectedRow) {
    elements[selectedRow.row].classList.remove('selected');
    elements[selectedRow.row].tabIndex = -1;
  }
  selectedRow = node;
  const rowElement = elements[node.row];
  rowElement.classList.add('selected');
  rowElement.tabIndex = 0;
  rowElement.focus({ preventScroll: true });
  if (scroll) rowElement.scrollIntoView({ block: 'nearest' });
  $('span-detail').replaceChildren(spanDetail(node.span, start));
}

function spanDetail(span, start) {
  const fragment = document.createDocumentFragment();
  const heading = el('h2', {}, serviceChip(serviceOf(span)), ' ', el('span', { text: span.name || '(unnamed)' }));
  fragment.append(heading);
  if (isError(span)) {
    fragment.append(el('p', { class: 'error-box', text: 'Error' + (span.tags && span.tags.error ? ': ' + span.tags.error : '') }));
  }
  const facts = [
    ['Span ID', span.id, 'mono'], ['Parent ID', span.parentId || '(root)', 'mono'],
    ['Trace ID', span.traceId, 'mono'], ['Kind', span.kind || '(local)'],
    ['Start', formatTime(span.timestamp) + (span.timestamp > start ? ' (+' + formatDuration(span.timestamp - start) + ')' : '')],
    ['Duration', formatDuration(span.duration)],
    ['Local', endpointText(span.localEndpoint)], ['Remote', endpointText(span.remoteEndpoint)],
    ['Flags', [span.shared ? 'shared' : '', span.debug ? 'debug' : ''].filter(Boolean).join(', ')],
  ];
  fragment.append(keyValueTable('span-facts', facts.filter(([, value]) => value)));
  const tags = Object.keys(span.tags || {}).sort().map((key) => [key, span.tags[key], key === 'error' ? 'error-text' : '',
    '#/?' + new URLSearchParams({ annotationQuery: key + '=' + span.tags[key] })]);
  fragment.append(el('h3', { text: 'Tags' }), tags.length ? keyValueTable('span-tags', tags) : el('p', { class: 'muted', text: 'No tags' }));
  const annotations = (span.annotations || []).map((a) => [
    span.timestamp ? '+' + formatDuration(a.timestamp - span.timestamp) : formatTime(a.timestamp), a.value, '']);
  fragment.append(el('h3', { text: 'Annotations' }),
    annotations.length ? keyValueTable('span-annotations', annotations) : el('p', { class: 'muted', text: 'No annotations' }));
  return fragment;
}

function keyValueTable(id, rows) {
  const body = el('tbody');
  // A row with a link (a tag) leads to the traces that have the same.
  for (const [key, value, cls, href] of rows) {
    const name = href ? el('a', { href, title: 'Find traces with ' + key + '=' + value, text: key }) : key;
    body.append(el('tr', {}, el('th', {}, name), el('td', { class: cls || null, text: value })));
  }
  return el('table', { class: 'kv', id }, body);
}
