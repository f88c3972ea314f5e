// Facts about Zipkin v2 spans: service, error, the trace tree (Zipkin's
// SpanNode) and a trace's summary.

import { plural } from './common.js';

export function serviceOf(span) {
  return (span.localEndpoint && span.localEndpoint.serviceName) || '(unknown)';
}

// The service a CLIENT or PRODUCER span calls (its remote endpoint), if named.
export function calledService(span) {
  if (span.kind !== 'CLIENT' && span.kind !== 'PRODUCER') return null;
  return (span.remoteEndpoint && span.remoteEndpoint.serviceName) || null;
}

// Zipkin marks failures with the `error` tag; a 5xx status counts too.
export function isError(span) {
  const tags = span.tags || {};
  if (Object.prototype.hasOwnProperty.call(tags, 'error')) return true;
  const status = parseInt(tags['http.response.status_code'] || tags['http.status_code'], 10);
  return status >= 500;
}

export function endpointText(endpoint) {
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
export function buildTree(spans) {
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
export function flatten(roots) {
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

export function summarize(spans) {
  let start = Infinity;
  let end = -Infinity;
  let errors = 0;
  const services = new Set();
  const ids = new Set(spans.map((s) => s.id));
  // Ids of spans a shared span can hang under: a shared span is never the root.
  const unshared = new Set(spans.filter((s) => !s.shared).map((s) => s.id));
  let root = null;
  let hasRoot = false;
  let missingParents = 0;
  for (const span of spans) {
    services.add(serviceOf(span));
    if (isError(span)) errors++;
    if (span.timestamp) {
      start = Math.min(start, span.timestamp);
      end = Math.max(end, span.timestamp + (span.duration || 0));
    }
    const joined = span.shared && unshared.has(span.id);
    if (!joined && !span.parentId) hasRoot = true;
    if (!joined && span.parentId && !ids.has(span.parentId)) missingParents++;
    const isRoot = (!span.parentId || !ids.has(span.parentId)) && !joined;
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
    incomplete: incompleteness(hasRoot, missingParents),
  };
}

// Why a trace is not whole yet, or null: a span's parent has not arrived
// (spans of one trace come from many processes, each on its own schedule,
// and a caller that does not report spans never sends it), or no span is
// the root.
function incompleteness(hasRoot, missingParents) {
  const reasons = [];
  if (!hasRoot) reasons.push('no root span');
  if (missingParents) {
    reasons.push(plural(missingParents, 'span') + ' whose parent has not arrived');
  }
  return reasons.length ? reasons.join('; ') : null;
}
