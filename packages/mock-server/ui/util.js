/** Builds an element: `el('td', { class: 'num' }, '12')`. Text is always text (never HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function formatBytes(n) {
  if (n === undefined || n === null) return '';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** Keeps both ends of a long text, as the pretty log does. */
export function shorten(text, width = 64) {
  if (!text || text.length <= width) return text ?? '';
  const keep = width - 1;
  const head = Math.ceil(keep / 2);
  return `${text.slice(0, head)}…${text.slice(text.length - (keep - head))}`;
}

export const time = (iso) => (iso ? iso.replace('T', ' ').slice(0, 23) : '');
export const pct = (r, n) => (n ? `${Math.round(r * 100)}%` : '–');

export function table(headers, rows) {
  return el(
    'table',
    {},
    el(
      'thead',
      {},
      el(
        'tr',
        {},
        headers.map((h) => el('th', { class: h.endsWith(' ') ? 'num' : '' }, h.trim())),
      ),
    ),
    el('tbody', {}, rows),
  );
}

export function errorBox(err) {
  return el('div', { class: 'error-box' }, `Could not load: ${err.message}`);
}
