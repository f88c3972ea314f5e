// The dependency graph: services as nodes, the calls between them as edges
// labelled with their call and error counts, from /api/v2/dependencies
// (Zipkin's DependencyLink: parent, child, callCount, errorCount), drawn as
// SVG by this script, and the same links as a table.
//
// Layout, layered left to right: a service sits one column right of the
// furthest of its callers (longest path from the services nobody calls,
// with the graph's cycles broken by a depth-first search), and one pass of
// barycentres orders each column by where its callers are, so edges cross
// less. Each call is a curve between the two columns, its arrow at the
// callee; a service calling itself gets a loop above its box. Labels that
// would cover a box or another label move down until they do not.

import { $, el, fetchJson, loadKnownServices, plural, serviceColour, setStatus, setViewServices } from './common.js';

const NODE_HEIGHT = 34;
const ROW_GAP = 48;
const COLUMN_GAP = 170;
const MARGIN = 40;
const LABEL_FONT = '12px system-ui, sans-serif';
const NODE_FONT = '600 13px system-ui, sans-serif';

// The windows offered, in milliseconds; 0 is everything stored.
const LOOKBACKS = [[0, 'All stored'], [900000, 'Last 15 minutes'], [3600000, 'Last hour'],
  [21600000, 'Last 6 hours'], [86400000, 'Last day']];

export async function showDependencies(params) {
  const lookback = Number(params.get('lookback')) || 0;
  renderLookbacks(lookback);
  setStatus('Loading dependencies…');
  // As the trace list: up to an hour past this browser's clock.
  const end = Date.now() + 3600 * 1000;
  const query = new URLSearchParams({ endTs: String(end), lookback: String(lookback || end) });
  try {
    const [links] = await Promise.all([fetchJson('/api/v2/dependencies?' + query), loadKnownServices()]);
    renderGraph(links);
    const services = new Set(links.flatMap((link) => [link.parent, link.child]));
    setStatus(plural(services.size, 'service') + ', ' + plural(links.length, 'link'));
  } catch (error) {
    setStatus('Could not load dependencies: ' + error.message, true);
  }
}

function renderLookbacks(selected) {
  const select = $('deps-lookback');
  select.replaceChildren(...LOOKBACKS.map(([ms, text]) => el('option', { value: String(ms), text })));
  select.value = String(selected);
  select.onchange = () => {
    location.hash = '#/dependencies' + (select.value !== '0' ? '?lookback=' + select.value : '');
  };
}

function renderGraph(links) {
  const svg = $('deps-graph');
  $('deps-empty').hidden = links.length > 0;
  svg.hidden = links.length === 0;
  $('deps-table').hidden = links.length === 0;
  if (!links.length) {
    svg.replaceChildren();
    return;
  }
  const nodes = layout(links);
  setViewServices(Array.from(nodes.keys()));
  const pairs = new Set(links.map((link) => link.parent + '\n' + link.child));
  const drawn = links.map((link) => {
    const paired = link.parent !== link.child && pairs.has(link.child + '\n' + link.parent);
    return { link, ...route(nodes.get(link.parent), nodes.get(link.child), paired) };
  });
  const boxes = Array.from(nodes.values(), (n) => ({ x: n.x, y: n.y, width: n.width, height: NODE_HEIGHT }));
  placeLabels(drawn, boxes);
  const width = Math.max(...boxes.map((box) => box.x + box.width)) + MARGIN;
  const height = Math.max(...boxes.map((box) => box.y + box.height)) + MARGIN;
  svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height));
  const nodeGroup = svgEl('g', { class: 'dep-nodes' });
  for (const node of nodes.values()) nodeGroup.append(drawNode(node, links));
  svg.replaceChildren(markers(), svgEl('g', { class: 'dep-edges' }, ...drawn.map(drawEdge)), nodeGroup,
    svgEl('g', { class: 'dep-labels' }, ...drawn.map(drawLabel)));
  renderTable(links);
}

// ---- layout -------------------------------------------------------------

// Services with their column, row and box: name → { name, layer, x, y, width }.
function layout(links) {
  const names = Array.from(new Set(links.flatMap((l) => [l.parent, l.child]))).sort();
  const callees = new Map(names.map((name) => [name, []]));
  const callers = new Map(names.map((name) => [name, []]));
  for (const link of links) {
    if (link.parent === link.child) continue;
    callees.get(link.parent).push(link.child);
    callers.get(link.child).push(link.parent);
  }
  const order = acyclicOrder(names, callees, callers);
  const position = new Map(order.map((name, index) => [name, index]));
  const layer = new Map(names.map((name) => [name, 0]));
  for (const name of order) {
    for (const callee of callees.get(name)) {
      if (position.get(callee) > position.get(name)) {
        layer.set(callee, Math.max(layer.get(callee), layer.get(name) + 1));
      }
    }
  }
  const columns = [];
  for (const name of names) (columns[layer.get(name)] = columns[layer.get(name)] || []).push(name);
  orderColumns(columns, callers);
  const nodes = new Map();
  const tallest = Math.max(...columns.map((column) => column.length));
  let x = MARGIN;
  for (const column of columns) {
    const width = Math.max(...column.map((name) => textWidth(name, NODE_FONT) + 34));
    // Centre each column on the tallest one.
    const top = MARGIN + ((tallest - column.length) * (NODE_HEIGHT + ROW_GAP)) / 2;
    column.forEach((name, row) => {
      nodes.set(name, { name, layer: layer.get(name), x, y: top + row * (NODE_HEIGHT + ROW_GAP), width });
    });
    x += width + COLUMN_GAP;
  }
  return nodes;
}

// The services in an order where every call goes forward except the ones
// that close a cycle: reverse post-order of a depth-first search that starts
// from the services nobody calls.
function acyclicOrder(names, callees, callers) {
  const done = new Set();
  const postOrder = [];
  const starts = names.filter((name) => callers.get(name).length === 0).concat(names);
  for (const start of starts) {
    if (done.has(start)) continue;
    done.add(start);
    const stack = [[start, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1];
      const next = callees.get(top[0])[top[1]++];
      if (next === undefined) {
        postOrder.push(stack.pop()[0]);
      } else if (!done.has(next)) {
        done.add(next);
        stack.push([next, 0]);
      }
    }
  }
  return postOrder.reverse();
}

// Sorts each column by the mean row of its callers in the columns before it.
function orderColumns(columns, callers) {
  const row = new Map();
  columns.forEach((column, index) => {
    if (index > 0) {
      const weight = (name) => {
        const rows = callers.get(name).filter((c) => row.has(c)).map((c) => row.get(c));
        return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : Infinity;
      };
      const weights = new Map(column.map((name) => [name, weight(name)]));
      column.sort((a, b) => (weights.get(a) - weights.get(b)) || (a < b ? -1 : 1));
    }
    column.forEach((name, position) => row.set(name, position));
  });
}

// ---- drawing ------------------------------------------------------------

let measure = null;

// Width in pixels of a text in a font, measured on a canvas that is never shown.
function textWidth(text, font) {
  measure = measure || document.createElement('canvas').getContext('2d');
  measure.font = font;
  return Math.ceil(measure.measureText(text).width);
}

// SVG elements take the namespace of the page's own <svg>. Styles go through
// the CSSOM: the page's Content Security Policy refuses style attributes.
function svgEl(tag, attrs, ...children) {
  const node = document.createElementNS($('deps-graph').namespaceURI, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === 'style') Object.assign(node.style, value);
    else node.setAttribute(key, String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function markers() {
  const defs = svgEl('defs');
  for (const [id, cls] of [['dep-arrow', 'dep-arrow'], ['dep-arrow-error', 'dep-arrow error']]) {
    defs.append(svgEl('marker', { id, class: cls, viewBox: '0 0 10 10', refX: 9, refY: 5, markerUnits: 'userSpaceOnUse',
      markerWidth: 10, markerHeight: 10, orient: 'auto-start-reverse' }, svgEl('path', { d: 'M0,0 L10,5 L0,10 z' })));
  }
  return defs;
}

function drawNode(node, links) {
  const received = links.filter((l) => l.child === node.name);
  const calls = received.reduce((sum, l) => sum + l.callCount, 0);
  const errors = received.reduce((sum, l) => sum + (l.errorCount || 0), 0);
  const colour = serviceColour(node.name);
  const title = node.name + (received.length ? ': called ' + plural(calls, 'time') + ', ' + plural(errors, 'error') : '');
  return svgEl('a', { class: 'dep-node', href: '#/?' + new URLSearchParams({ serviceName: node.name }),
    'data-service': node.name },
  svgEl('title', {}, title + ' (click for its traces)'),
  svgEl('rect', { x: node.x, y: node.y, width: node.width, height: NODE_HEIGHT, rx: 6, style: { stroke: colour } }),
  svgEl('circle', { cx: node.x + 14, cy: node.y + NODE_HEIGHT / 2, r: 5, style: { fill: colour } }),
  svgEl('text', { x: node.x + 25, y: node.y + NODE_HEIGHT / 2, 'dominant-baseline': 'central' }, node.name));
}

// The curve of one link: left to right between the two columns, with the
// arrow at the callee's end (the start, for a call back to an earlier
// column). Two services calling each other get two curves a little apart.
function route(from, to, paired) {
  const cy = (node) => node.y + NODE_HEIGHT / 2;
  if (from === to) {
    const x = from.x + from.width - 34;
    return { backward: false, ...curve([x, from.y], [x - 4, from.y - 40], [x + 26, from.y - 40], [x + 22, from.y]) };
  }
  const backward = to.layer < from.layer;
  const [left, right] = backward ? [to, from] : [from, to];
  const shift = paired ? (backward ? 7 : -7) : 0;
  const x1 = left.x + left.width;
  const x2 = right.x;
  const bend = (x2 - x1) / 2;
  const [y1, y2] = [cy(left) + shift, cy(right) + shift];
  return { backward, ...curve([x1, y1], [x1 + bend, y1], [x2 - bend, y2], [x2, y2]) };
}

// A cubic Bézier's path and its point halfway (t = 0.5).
function curve(p0, p1, p2, p3) {
  const middle = {
    x: (p0[0] + 3 * p1[0] + 3 * p2[0] + p3[0]) / 8,
    y: (p0[1] + 3 * p1[1] + 3 * p2[1] + p3[1]) / 8,
  };
  return { path: 'M' + p0 + ' C' + p1 + ' ' + p2 + ' ' + p3, middle };
}

// Puts each label at its curve's midpoint, moved down past any box or label
// it would cover; each placed label joins `boxes`.
function placeLabels(drawn, boxes) {
  const overlap = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
  const byPosition = drawn.slice().sort((a, b) => a.middle.y - b.middle.y || a.middle.x - b.middle.x);
  for (const item of byPosition) {
    item.text = labelText(item.link);
    const width = textWidth(item.text.join(''), LABEL_FONT) + 10;
    const box = { x: item.middle.x - width / 2, y: item.middle.y - 9, width, height: 18 };
    for (let tries = 0; tries < 100; tries++) {
      const hit = boxes.find((other) => overlap(box, other));
      if (!hit) break;
      box.y = hit.y + hit.height + 2;
    }
    boxes.push(box);
    item.label = box;
  }
}

function labelText(link) {
  const errors = link.errorCount || 0;
  return [plural(link.callCount, 'call'), errors ? ' · ' + plural(errors, 'error') : ''];
}

function linkData(link) {
  return { 'data-parent': link.parent, 'data-child': link.child,
    'data-calls': link.callCount, 'data-errors': link.errorCount || 0 };
}

function drawEdge({ link, path, backward, text }) {
  const arrow = 'url(#' + (link.errorCount ? 'dep-arrow-error' : 'dep-arrow') + ')';
  const thickness = 1.5 + Math.min(3, Math.log10(link.callCount));
  return svgEl('path', { class: 'dep-edge' + (link.errorCount ? ' error' : ''), d: path, ...linkData(link),
    [backward ? 'marker-start' : 'marker-end']: arrow, style: { strokeWidth: thickness + 'px' } },
  svgEl('title', {}, link.parent + ' → ' + link.child + ': ' + text.join('')));
}

function drawLabel({ link, label, text }) {
  const [calls, errors] = text;
  return svgEl('g', { class: 'dep-label' + (errors ? ' error' : ''), ...linkData(link) },
    svgEl('rect', { x: label.x, y: label.y, width: label.width, height: label.height, rx: 4 }),
    svgEl('text', { x: label.x + label.width / 2, y: label.y + label.height / 2, 'text-anchor': 'middle',
      'dominant-baseline': 'central' },
    svgEl('tspan', { class: 'calls' }, calls), errors ? svgEl('tspan', { class: 'errors' }, errors) : null));
}

function renderTable(links) {
  const sorted = links.slice().sort((a, b) => b.callCount - a.callCount ||
    (a.parent + a.child < b.parent + b.child ? -1 : 1));
  const rows = sorted.map((link) => {
    const errors = link.errorCount || 0;
    return el('tr', { class: errors ? 'error' : null },
      el('td', { text: link.parent }), el('td', { text: link.child }),
      el('td', { class: 'col-num', text: link.callCount.toLocaleString('en-US') }),
      el('td', { class: 'col-num' + (errors ? ' error-text' : ''),
        text: errors ? errors.toLocaleString('en-US') + ' (' + Math.round((errors / link.callCount) * 100) + '%)' : '0' }));
  });
  $('deps-rows').replaceChildren(...rows);
}
