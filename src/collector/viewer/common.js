// Shared by every view of the trace viewer: DOM building, formatting, the
// collector's API and service colours.
//
// Span data is untrusted: every string reaches the page through textContent
// or setAttribute, never as markup.

export const $ = (id) => document.getElementById(id);

// Colours for services; red is kept for errors.
const PALETTE = [
  '#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#17a2b8', '#c9a227',
  '#9c755f', '#6b6ecf', '#d17aa8', '#8c9a3c', '#6c7a89',
];
const colourOf = new Map();
const paletteUsed = new Map();

// A stable colour per service: FNV-1a hash into the palette, probing past
// colours other services already took on this page.
export function serviceColour(name) {
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
