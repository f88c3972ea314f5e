// tracehop trace viewer: lists recent traces and shows one as a waterfall.
//
// Reads only this collector's Zipkin v2 API (/api/v2/services, /api/v2/traces,
// /api/v2/trace/{id}). Routes live in the URL hash: "#/?serviceName=..." is
// the list, "#/trace/{id}" one trace (the path /trace/{id} works too).
// Span data is untrusted: every string reaches the page through textContent
// or setAttribute, never as markup. Each view is built into a fragment and
// inserted once, so a few hundred rows cost one layout.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);

  // Colours for services; red is kept for errors.
  const PALETTE = [
    '#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#17a2b8', '#c9a227',
    '#9c755f', '#6b6ecf', '#d17aa8', '#8c9a3c', '#6c7a89',
  ];
  const colourOf = new Map();
  const paletteUsed = new Map();

  // A stable colour per service: FNV-1a hash into the palette, probing past
  // colours other services already took on this page.
  function serviceColour(name) {
    const key = name || '(unknown)';
    let colour = colourOf.get(key);
    if (colour) return colour;
    let hash = 0x811c9dc5;
    for (let i = 0; i < key.length; i++) {
      hash ^= key.charCodeAt(i);
      hash = Math.imul(hash, 0x01000193) >>> 0;
    }
    let index = hash % PALETTE.length;
    for (let probe = 0; probe < PALETTE.length && paletteUsed.has(index); probe++) {
      index = (index + 1) % PALETTE.length;
    }
    paletteUsed.set(index, key);
    colour = PALETTE[index];
    colourOf.set(key, colour);
    return colour;
  }

  // Builds an element; strings become text nodes, never markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  // ---- formatting -------------------------------------------------------

  function formatDuration(us) {
    if (us === undefined || us === null || !isFinite(us)) return '–';
    if (us < 1000) return Math.round(us) + 'µs';
    if (us < 1e6) return trim(us / 1000) + 'ms';
    if (us < 6e7) return trim(us / 1e6) + 's';
    const minutes = Math.floor(us / 6e7);
    return minutes + 'm ' + Math.round((us - minutes * 6e7) / 1e6) + 's';
  }

  function trim(value) {
    return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
  }

  function pad(n, width) {
    return String(n).padStart(width || 2, '0');
  }

  function formatTime(us) {
    if (!us) return '–';
    const d = new Date(us / 1000);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) + '.' +
      pad(d.getMilliseconds(), 3);
  }

  function formatAgo(us) {
    if (!us) return '';
    const seconds = Math.round((Date.now() - us / 1000) / 1000);
    if (seconds < 0) return 'in the future';
    if (seconds < 60) return seconds + 's ago';
    if (seconds < 3600) return Math.floor(seconds / 60) + ' min ago';
    if (seconds < 86400) return Math.floor(seconds / 3600) + ' h ago';
    return Math.floor(seconds / 86400) + ' d ago';
  }

  // "150ms", "1.5s", "250us", "2m"; a bare number is milliseconds.
  function parseDuration(text) {
    const match = /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m)?\s*$/i.exec(text || '');
    if (!match) return null;
    const scale = { us: 1, 'µs': 1, ms: 1e3, s: 1e6, m: 6e7 }[(match[2] || 'ms').toLowerCase()];
    return Math.max(1, Math.round(parseFloat(match[1]) * scale));
  }

  // ---- span facts -------------------------------------------------------

  function serviceOf(span) {
    return (span.localEndpoint && span.localEndpoint.serviceName) || '(unknown)';
  }

  // Zipkin marks failures with the `error` tag; a 5xx status counts too.
  function isError(span) {
    const tags = span.tags || {};
    if (Object.prototype.hasOwnProperty.call(tags, 'error')) return true;
    const status = parseInt(tags['http.response.status_code'] || tags['http.status_code'], 10);
    return status >= 500;
  }

  function endpointText(endpoint) {
    if (!endpoint) return '';
    const parts = [];
    if (endpoint.serviceName) parts.push(endpoint.serviceName);
    const ip = endpoint.ipv4 || (endpoint.ipv6 ? '[' + endpoint.ipv6 + ']' : '');
    if (ip || endpoint.port) parts.push((ip || '?') + (endpoint.port ? ':' + endpoint.port : ''));
    return parts.join(' · ');
  }

  // Arranges spans into a tree as Zipkin's SpanNode does (the API has already
  // applied Zipkin's shared-span fix-ups). A B3 shared span hangs under the
  // non-shared span whose id it shares (the client, or a sidecar's server
  // span): one RPC seen from both sides. A span whose parentId names a shared
  // span on its own endpoint hangs under that span, else under the non-shared
  // span with that id. Spans whose parent is missing become roots, flagged.
  function buildTree(spans) {
    const nodes = spans.map((span, index) => ({ span, index, children: [], parent: null, orphan: false }));
    const byId = new Map();
    for (const node of nodes) {
      const list = byId.get(node.span.id) || [];
      list.push(node);
      byId.set(node.span.id, list);
    }
    const roots = [];
    for (const node of nodes) {
      const span = node.span;
      let parent = null;
      if (span.shared) parent = byId.get(span.id).find((o) => o !== node && !o.span.shared) || null;
      if (!parent && span.parentId) {
        const candidates = (byId.get(span.parentId) || []).filter((o) => o !== node);
        parent = candidates.find((o) => o.span.shared && sameEndpoint(o.span, span)) ||
          candidates.find((o) => !o.span.shared) || null;
        if (!parent) node.orphan = true;
      }
      if (parent && createsCycle(node, parent)) parent = null;
      node.parent = parent;
      if (parent) parent.children.push(node);
      else roots.push(node);
    }
    const byStart = (a, b) => (a.span.timestamp || 0) - (b.span.timestamp || 0);
    for (const node of nodes) node.children.sort(byStart);
    roots.sort((a, b) => (a.orphan - b.orphan) || byStart(a, b));
    return roots;
  }

  // Zipkin compares whole local endpoints; the API writes them in one field order.
  function sameEndpoint(a, b) {
    return JSON.stringify(a.localEndpoint || null) === JSON.stringify(b.localEndpoint || null);
  }

  function createsCycle(node, parent) {
    for (let at = parent; at; at = at.parent) if (at === node) return true;
    return false;
  }

  // Depth-first order with depth and subtree size, without recursion.
  function flatten(roots) {
    const rows = [];
    const stack = roots.slice().reverse().map((node) => ({ node, depth: 0 }));
    while (stack.length) {
      const { node, depth } = stack.pop();
      node.depth = depth;
      node.row = rows.length;
      rows.push(node);
      for (let i = node.children.length - 1; i >= 0; i--) stack.push({ node: node.children[i], depth: depth + 1 });
    }
    for (let i = rows.length - 1; i >= 0; i--) {
      rows[i].size = 1 + rows[i].children.reduce((sum, child) => sum + child.size, 0);
    }
    return rows;
  }

  function summarize(spans) {
    let start = Infinity;
    let end = -Infinity;
    let errors = 0;
    const services = new Set();
    const ids = new Set(spans.map((s) => s.id));
    // Ids of spans a shared span can hang under: a shared span is never the root.
    const unshared = new Set(spans.filter((s) => !s.shared).map((s) => s.id));
    let root = null;
    for (const span of spans) {
      services.add(serviceOf(span));
      if (isError(span)) errors++;
      if (span.timestamp) {
        start = Math.min(start, span.timestamp);
        end = Math.max(end, span.timestamp + (span.duration || 0));
      }
      const isRoot = (!span.parentId || !ids.has(span.parentId)) && !(span.shared && unshared.has(span.id));
      const rank = (s) => (s.parentId ? 1 : 0);
      if (isRoot && (!root || rank(span) < rank(root) ||
          (rank(span) === rank(root) && (span.timestamp || Infinity) < (root.timestamp || Infinity)))) {
        root = span;
      }
    }
    root = root || spans[0];
    return {
      traceId: spans[0].traceId,
      root,
      start: isFinite(start) ? start : 0,
      duration: isFinite(start) ? Math.max(end - start, root.duration || 0) : root.duration || 0,
      errors,
      services: Array.from(services).sort(),
      spanCount: spans.length,
    };
  }

  // ---- API --------------------------------------------------------------

  async function fetchJson(path) {
    const response = await fetch(path, { headers: { Accept: 'application/json' } });
    if (!response.ok) {
      const text = await response.text();
      const error = new Error(text.trim() || response.statusText);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  function setStatus(text, isProblem) {
    const status = $('status');
    status.textContent = text;
    status.classList.toggle('problem', !!isProblem);
  }

  // ---- list view --------------------------------------------------------

  let refreshTimer = null;
  // The span row whose details are shown (a tree node from flatten()).
  let selectedRow = null;

  // Refetched with every list so services that appeared since show up.
  async function loadServices(selected) {
    const services = await fetchJson('/api/v2/services');
    const fragment = document.createDocumentFragment();
    fragment.append(el('option', { value: '', text: 'All services' }));
    for (const name of services) {
      serviceColour(name);
      fragment.append(el('option', { value: name, text: name }));
    }
    const select = $('filter-service');
    select.replaceChildren(fragment);
    select.value = selected || '';
  }

  // Everything stored, up to an hour past this browser's clock so spans
  // from hosts whose clocks run ahead still show.
  function listQuery(params) {
    const end = Date.now() + 3600 * 1000;
    const query = new URLSearchParams({ endTs: String(end), lookback: String(end) });
    query.set('limit', params.get('limit') || '100');
    if (params.get('serviceName')) query.set('serviceName', params.get('serviceName'));
    const min = parseDuration(params.get('minDuration'));
    if (min) query.set('minDuration', String(min));
    if (params.get('errors') === '1') query.set('annotationQuery', 'error');
    return '/api/v2/traces?' + query.toString();
  }

  async function showList(params) {
    $('filter-min').value = params.get('minDuration') || '';
    $('filter-errors').checked = params.get('errors') === '1';
    $('filter-limit').value = params.get('limit') || '100';
    const began = performance.now();
    setStatus('Loading traces…');
    try {
      await loadServices(params.get('serviceName'));
      const traces = await fetchJson(listQuery(params));
      renderList(traces.filter((t) => t.length > 0).map(summarize));
      setStatus('Loaded in ' + Math.round(performance.now() - began) + ' ms');
    } catch (error) {
      setStatus('Could not load traces: ' + error.message, true);
    }
  }

  function renderList(summaries) {
    summaries.sort((a, b) => b.start - a.start);
    const longest = summaries.reduce((max, s) => Math.max(max, s.duration), 1);
    const fragment = document.createDocumentFragment();
    for (const s of summaries) fragment.append(listRow(s, longest));
    $('trace-rows').replaceChildren(fragment);
    $('trace-list').hidden = summaries.length === 0;
    $('list-empty').hidden = summaries.length !== 0;
    const errorCount = summaries.filter((s) => s.errors > 0).length;
    $('list-summary').textContent = summaries.length + (summaries.length === 1 ? ' trace' : ' traces') +
      ', newest first' + (errorCount ? ' · ' + errorCount + ' with errors' : '');
  }

  function listRow(s, longest) {
    const href = '#/trace/' + encodeURIComponent(s.traceId);
    const service = serviceOf(s.root);
    const chips = el('div', { class: 'chips' });
    for (const name of s.services.slice(0, 5)) chips.append(serviceChip(name));
    if (s.services.length > 5) chips.append(el('span', { class: 'more', text: '+' + (s.services.length - 5) }));
    const share = Math.max(1, Math.round((s.duration / longest) * 100));
    const bar = el('div', { class: 'dur-bar' });
    bar.style.width = share + '%';
    return el('tr', {
      class: 'trace-row' + (s.errors ? ' error' : ''),
      'data-trace-id': s.traceId,
      'data-root-service': service,
      'data-root-name': s.root.name || '',
      onclick: (event) => { if (event.target.tagName !== 'A') location.hash = href; },
    },
    el('td', { class: 'col-err' }, s.errors ? el('span', { class: 'err-mark', title: s.errors + ' error span(s)', text: '!' }) : null),
    el('td', { class: 'root' },
      el('a', { class: 'trace-link', href }, el('span', { class: 'svc', text: service }), ' ',
        el('span', { class: 'name', text: s.root.name || '(unnamed)' })),
      el('div', { class: 'trace-id', text: s.traceId })),
    el('td', { class: 'col-services' }, chips),
    el('td', { class: 'col-num', text: String(s.spanCount) }),
    el('td', { class: 'col-duration' }, el('span', { class: 'dur-text', text: formatDuration(s.duration) }),
      el('div', { class: 'dur-track' }, bar)),
    el('td', { class: 'col-time', title: formatTime(s.start) }, el('div', { text: formatAgo(s.start) }),
      el('div', { class: 'muted small', text: formatTime(s.start) })));
  }

  function serviceChip(name) {
    const dot = el('span', { class: 'dot' });
    dot.style.background = serviceColour(name);
    return el('span', { class: 'chip', 'data-service': name }, dot, name);
  }

  // ---- trace view -------------------------------------------------------

  async function showTrace(traceId) {
    setStatus('Loading trace…');
    $('trace-title').textContent = 'Trace ' + traceId;
    $('wf-rows').replaceChildren();
    $('trace-meta').replaceChildren();
    $('trace-legend').replaceChildren();
    try {
      const spans = await fetchJson('/api/v2/trace/' + encodeURIComponent(traceId));
      renderTrace(spans);
      setStatus(spans.length + ' spans');
    } catch (error) {
      const text = error.status === 404 ? 'Trace ' + traceId + ' was not found (it may have been evicted).' : error.message;
      $('wf-rows').replaceChildren(el('p', { class: 'empty', text }));
      setStatus(error.status === 404 ? 'Not found' : 'Could not load the trace', true);
    }
  }

  function renderTrace(spans) {
    const summary = summarize(spans);
    const rows = flatten(buildTree(spans));
    const start = summary.start;
    const total = Math.max(summary.duration, 1);
    $('trace-title').replaceChildren(serviceChip(serviceOf(summary.root)), ' ',
      el('span', { text: summary.root.name || '(unnamed)' }));
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
      const tick = el('span', { class: 'tick' + (i === 4 ? ' last' : ''), text: formatDuration((total * i) / 4) });
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
    const tags = Object.keys(span.tags || {}).sort().map((key) => [key, span.tags[key], key === 'error' ? 'error-text' : '']);
    fragment.append(el('h3', { text: 'Tags' }), tags.length ? keyValueTable('span-tags', tags) : el('p', { class: 'muted', text: 'No tags' }));
    const annotations = (span.annotations || []).map((a) => [
      span.timestamp ? '+' + formatDuration(a.timestamp - span.timestamp) : formatTime(a.timestamp), a.value, '']);
    fragment.append(el('h3', { text: 'Annotations' }),
      annotations.length ? keyValueTable('span-annotations', annotations) : el('p', { class: 'muted', text: 'No annotations' }));
    return fragment;
  }

  function keyValueTable(id, rows) {
    const body = el('tbody');
    for (const [key, value, cls] of rows) {
      body.append(el('tr', {}, el('th', { text: key }), el('td', { class: cls || null, text: value })));
    }
    return el('table', { class: 'kv', id }, body);
  }

  // ---- routing ----------------------------------------------------------

  function route() {
    clearTimeout(refreshTimer);
    const hash = location.hash.replace(/^#/, '');
    const fromPath = /^\/trace\/([^/]+)$/.exec(location.pathname);
    const traceMatch = /^\/trace\/([^/?]+)/.exec(hash) || (!hash && fromPath);
    $('list-view').hidden = !!traceMatch;
    $('trace-view').hidden = !traceMatch;
    if (traceMatch) {
      document.title = 'Trace ' + decodeURIComponent(traceMatch[1]) + ' · tracehop';
      showTrace(decodeURIComponent(traceMatch[1]));
      return;
    }
    document.title = 'tracehop · traces';
    const params = new URLSearchParams(hash.includes('?') ? hash.slice(hash.indexOf('?') + 1) : '');
    showList(params).then(scheduleRefresh);
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    if ($('auto-refresh').checked && !$('list-view').hidden) refreshTimer = setTimeout(route, 5000);
  }

  function onFilterSubmit(event) {
    event.preventDefault();
    const params = new URLSearchParams();
    const service = $('filter-service').value;
    if (service) params.set('serviceName', service);
    const min = $('filter-min').value.trim();
    if (min) {
      if (parseDuration(min) === null) {
        setStatus('Min duration: use a number with µs, ms, s or m (e.g. 150ms)', true);
        return;
      }
      params.set('minDuration', min);
    }
    if ($('filter-errors').checked) params.set('errors', '1');
    if ($('filter-limit').value !== '100') params.set('limit', $('filter-limit').value);
    const target = '#/' + (params.toString() ? '?' + params.toString() : '');
    if (location.hash === target) route();
    else location.hash = target;
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('filters').addEventListener('submit', onFilterSubmit);
    for (const id of ['filter-service', 'filter-errors', 'filter-limit']) {
      $(id).addEventListener('change', () => $('filters').requestSubmit());
    }
    $('auto-refresh').addEventListener('change', scheduleRefresh);
    window.addEventListener('hashchange', route);
    route();
  });
})();
