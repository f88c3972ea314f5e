// Shared by every view of the trace viewer: DOM building, formatting, the
// collector's API and service colours.
//
// Span data is untrusted: every string reaches the page through textContent
// or setAttribute, never as markup.

export const $ = (id) => document.getElementById(id);

// ---- service colours ----------------------------------------------------
//
// Seven hues at least 24° apart, none near red (kept for errors), each with
// 3:1 contrast or more on white (WCAG 1.4.11): orange 22°, gold 46°, green
// 135°, teal 180°, blue 212°, purple 272°, magenta 318°. The second row
// repeats them darker, for views with more than seven services.
const PALETTE = [
  '#de5d12', '#b08907', '#298e43', '#0f8585', '#2170ca', '#8e49ca', '#c62f99',
  '#a5450d', '#765b05', '#1c5f2c', '#094e4e', '#185395', '#6f30a6', '#952373',
];
const ROW = 7;
// Slots of every service the collector knows, and of the services on screen.
let knownSlots = new Map();
let viewSlots = new Map();

// A service's own slot: FNV-1a of its name into the first row, so it is the
// same on every page and after every reload.
function hashSlot(name) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % ROW;
}

// Gives each name its preferred slot unless a name before it (in name order,
// so the outcome does not depend on the order spans arrived in) has it, else
// the next free hue of the first row, then of the second; when all are
// taken, its preferred slot.
function assignSlots(names, preferred) {
  const slots = new Map();
  const taken = new Set();
  for (const name of Array.from(new Set(names)).sort()) {
    const want = preferred(name);
    let slot = want;
    for (let i = 0; taken.has(slot) && i < PALETTE.length; i++) {
      slot = Math.floor(i / ROW) * ROW + ((want % ROW) + 1 + i) % ROW;
    }
    if (taken.has(slot)) slot = want;
    taken.add(slot);
    slots.set(name, slot);
  }
  return slots;
}

// Every service the collector knows (/api/v2/services): their colours are
// distinct while there are no more than the palette holds.
function setKnownServices(names) {
  knownSlots = assignSlots(names, hashSlot);
  viewSlots = knownSlots;
}

// The services one view shows: kept distinct among themselves, each keeping
// its usual colour where that does not clash.
export function setViewServices(names) {
  viewSlots = assignSlots(names, (name) => knownSlots.get(name) ?? hashSlot(name));
}

// Fetches the service names and colours them; returns the names.
export async function loadKnownServices() {
  const services = await fetchJson('/api/v2/services');
  setKnownServices(services);
  return services;
}

export function serviceColour(name) {
  const key = name || '(unknown)';
  return PALETTE[viewSlots.get(key) ?? knownSlots.get(key) ?? hashSlot(key)];
}

// "1 span", "1,000 spans"; `many` for irregular plurals.
export function plural(count, one, many) {
  return count.toLocaleString('en-US') + ' ' + (count === 1 ? one : many || one + 's');
}

// Builds an element; strings become text nodes, never markup.
export function el(tag, attrs, ...children) {
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

export function formatDuration(us) {
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

export function formatTime(us) {
  if (!us) return '–';
  const d = new Date(us / 1000);
  return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
    pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) + '.' +
    pad(d.getMilliseconds(), 3);
}

export function formatAgo(us) {
  if (!us) return '';
  const seconds = Math.round((Date.now() - us / 1000) / 1000);
  if (seconds < 0) return 'in the future';
  if (seconds < 60) return seconds + 's ago';
  if (seconds < 3600) return Math.floor(seconds / 60) + ' min ago';
  if (seconds < 86400) return Math.floor(seconds / 3600) + ' h ago';
  return Math.floor(seconds / 86400) + ' d ago';
}

// "150ms", "1.5s", "250us", "2m"; a bare number is milliseconds.
export function parseDuration(text) {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m)?\s*$/i.exec(text || '');
  if (!match) return null;
  const scale = { us: 1, 'µs': 1, ms: 1e3, s: 1e6, m: 6e7 }[(match[2] || 'ms').toLowerCase()];
  return Math.max(1, Math.round(parseFloat(match[1]) * scale));
}

export async function fetchJson(path) {
  const response = await fetch(path, { headers: { Accept: 'application/json' } });
  if (!response.ok) {
    const text = await response.text();
    const error = new Error(text.trim() || response.statusText);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

export function setStatus(text, isProblem) {
  const status = $('status');
  status.textContent = text;
  status.classList.toggle('problem', !!isProblem);
}

export function serviceChip(name) {
  const dot = el('span', { class: 'dot' });
  dot.style.background = serviceColour(name);
  return el('span', { class: 'chip', 'data-service': name }, dot, name);
}

// The marker of a trace that is still missing spans, with the reason.
export function incompleteMark(reason) {
  return el('span', {
    class: 'incomplete-mark',
    title: 'Incomplete: ' + reason + '. More spans may still arrive, or a caller does not report its spans.',
    text: 'incomplete',
  });
}
