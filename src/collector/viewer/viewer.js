// tracehop trace viewer: lists recent traces and shows one as a waterfall.
//
// Reads only this collector's Zipkin v2 API (/api/v2/services, /api/v2/traces,
// /api/v2/trace/{id}, /api/v2/dependencies). Routes live in the URL hash:
// "#/?serviceName=...&annotationQuery=..." is the list, "#/trace/{id}" one
// trace (the path /trace/{id} works too), "#/dependencies" the service graph.
// Span data is untrusted: every string reaches the page through textContent
// or setAttribute, never as markup. Each view is built into a fragment and
// inserted once, so a few hundred rows cost one layout.
//
// Modules: common.js (DOM, formatting, API, colours), spans.js (span facts,
// tree, summary), list.js (the trace list), trace.js (the waterfall),
// dependencies.js (the service graph); this one routes between the views.

import { $ } from './common.js';
import { onFilterSubmit, showList } from './list.js';
import { showTrace } from './trace.js';
import { showDependencies } from './dependencies.js';

let refreshTimer = null;

function route() {
  clearTimeout(refreshTimer);
  const hash = location.hash.replace(/^#/, '');
  const fromPath = /^\/trace\/([^/]+)$/.exec(location.pathname);
  const traceMatch = /^\/trace\/([^/?]+)/.exec(hash) || (!hash && fromPath);
  const params = new URLSearchParams(hash.includes('?') ? hash.slice(hash.indexOf('?') + 1) : '');
  const view = traceMatch ? 'trace' : /^\/dependencies\b/.test(hash) ? 'deps' : 'list';
  $('list-view').hidden = view !== 'list';
  $('trace-view').hidden = view !== 'trace';
  $('deps-view').hidden = view !== 'deps';
  $('tab-traces').classList.toggle('active', view !== 'deps');
  $('tab-dependencies').classList.toggle('active', view === 'deps');
  if (view === 'trace') {
    document.title = 'Trace ' + decodeURIComponent(traceMatch[1]) + ' · tracehop';
    showTrace(decodeURIComponent(traceMatch[1]));
  } else if (view === 'deps') {
    document.title = 'tracehop · dependencies';
    showDependencies(params);
  } else {
    document.title = 'tracehop · traces';
    showList(params).then(scheduleRefresh);
  }
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if ($('auto-refresh').checked && !$('list-view').hidden) refreshTimer = setTimeout(route, 5000);
}

// Module scripts run once the document is parsed.
(() => {
  $('filters').addEventListener('submit', onFilterSubmit);
  for (const id of ['filter-service', 'filter-errors', 'filter-limit']) {
    $(id).addEventListener('change', () => $('filters').requestSubmit());
  }
  $('auto-refresh').addEventListener('change', scheduleRefresh);
  window.addEventListener('hashchange', route);
  route();
})();
