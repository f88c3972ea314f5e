// The trace list: filters, the query to /api/v2/traces and one row per trace.

import { $, el, fetchJson, formatAgo, formatDuration, formatTime, incompleteMark, loadKnownServices,
  parseDuration, plural, serviceChip, setStatus } from './common.js';
import { serviceOf, summarize } from './spans.js';

// Refetched with every list so services that appeared since show up.
async function loadServices(selected) {
  const services = await loadKnownServices();
  const fragment = document.createDocumentFragment();
  fragment.append(el('option', { value: '', text: 'All services' }));
  for (const name of services) fragment.append(el('option', { value: name, text: name }));
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
  const terms = tagQuery(params);
  if (terms) query.set('annotationQuery', terms);
  return '/api/v2/traces?' + query.toString();
}

// The tag search, as Zipkin's annotationQuery: "http.route=/api/orders/{id}"
// (a tag with that value), "error" (a tag key or an annotation), several
// joined with " and ". "Errors only" adds "error".
function tagQuery(params) {
  const terms = [params.get('annotationQuery'), params.get('errors') === '1' ? 'error' : null];
  return terms.filter(Boolean).join(' and ');
}

export async function showList(params) {
  $('filter-tags').value = params.get('annotationQuery') || '';
  $('filter-min').value = params.get('minDuration') || '';
  $('filter-errors').checked = params.get('errors') === '1';
  $('filter-limit').value = params.get('limit') || '100';
  const began = performance.now();
  setStatus('Loading traces…');
  try {
    await loadServices(params.get('serviceName'));
    const traces = await fetchJson(listQuery(params));
    renderList(traces.filter((t) => t.length > 0).map(summarize), params.get('annotationQuery'));
    setStatus('Loaded in ' + Math.round(performance.now() - began) + ' ms');
  } catch (error) {
    setStatus('Could not load traces: ' + error.message, true);
  }
}

function renderList(summaries, tags) {
  summaries.sort((a, b) => b.start - a.start);
  const longest = summaries.reduce((max, s) => Math.max(max, s.duration), 1);
  const fragment = document.createDocumentFragment();
  for (const s of summaries) fragment.append(listRow(s, longest));
  $('trace-rows').replaceChildren(fragment);
  $('trace-list').hidden = summaries.length === 0;
  $('list-empty').hidden = summaries.length !== 0;
  const errorCount = summaries.filter((s) => s.errors > 0).length;
  const incompleteCount = summaries.filter((s) => s.incomplete).length;
  $('list-summary').textContent = plural(summaries.length, 'trace') +
    (tags ? ' with ' + tags : '') + ', newest first' +
    (errorCount ? ' · ' + errorCount + ' with errors' : '') +
    (incompleteCount ? ' · ' + incompleteCount + ' incomplete' : '');
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
    'data-incomplete': s.incomplete ? 'true' : null,
    'data-root-service': service,
    'data-root-name': s.root.name || '',
    onclick: (event) => { if (event.target.tagName !== 'A') location.hash = href; },
  },
  el('td', { class: 'col-err' }, s.errors ? el('span', { class: 'err-mark', title: plural(s.errors, 'error span'), text: '!' }) : null),
  el('td', { class: 'root' },
    el('a', { class: 'trace-link', href }, el('span', { class: 'svc', text: service }), ' ',
      el('span', { class: 'name', text: s.root.name || '(unnamed)' })),
    s.incomplete ? incompleteMark(s.incomplete) : null,
    el('div', { class: 'trace-id', text: s.traceId })),
  el('td', { class: 'col-services' }, chips),
  el('td', { class: 'col-num', text: String(s.spanCount) }),
  el('td', { class: 'col-duration' }, el('span', { class: 'dur-text', text: formatDuration(s.duration) }),
    el('div', { class: 'dur-track' }, bar)),
  el('td', { class: 'col-time', title: formatTime(s.start) }, el('div', { text: formatAgo(s.start) }),
    el('div', { class: 'muted small', text: formatTime(s.start) })));
}

export function onFilterSubmit(event) {
  event.preventDefault();
  const params = new URLSearchParams();
  const service = $('filter-service').value;
  if (service) params.set('serviceName', service);
  const tags = $('filter-tags').value.trim();
  if (tags) params.set('annotationQuery', tags);
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
  // The same search again reloads the list.
  if (location.hash === target) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = target;
}
