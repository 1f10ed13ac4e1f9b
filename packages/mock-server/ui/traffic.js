import { stream } from './api.js';
import { el, formatBytes, shorten, time } from './util.js';

const MAX_ROWS = 1000;
const FIELDS = ['keyPrefix', 'op', 'outcome', 'client', 'entryId'];
const OUTCOMES = [
  '',
  'hit-exact',
  'hit-prefix',
  'miss',
  'created',
  'committed',
  'ok',
  'conflict',
  'write-denied',
  'read-denied',
  'rate-limited',
  'quota',
  'fault',
  'not-found',
  'error',
];
const CLIENTS = [
  '',
  'buildkit',
  'actions-cache',
  'sccache',
  'gha-cache',
  'azure-sdk',
  'curl',
  'ui',
  'browser',
  'unknown',
];

function row(event) {
  const detail = el(
    'tr',
    { class: 'detail', hidden: true },
    el('td', { colspan: 9 }, el('pre', {}, JSON.stringify(event, null, 2))),
  );
  const summary = el(
    'tr',
    {
      class: 'event',
      'data-id': event.id,
      'data-outcome': event.outcome,
      onclick: () => detail.toggleAttribute('hidden'),
    },
    el('td', { class: 'mono' }, time(event.time).slice(11)),
    el('td', { class: 'client' }, event.client),
    el('td', {}, event.op),
    el(
      'td',
      {},
      el('code', { title: event.key ?? '' }, shorten(event.key ?? '', 72)),
      event.explanation
        ? el(
            'div',
            { class: 'reason', 'data-reason': event.explanation.reason },
            `${event.explanation.reason}: ${event.reason}`,
          )
        : event.reason && event.outcome !== 'miss'
          ? el('div', { class: 'muted' }, event.reason)
          : null,
    ),
    el('td', {}, event.scope ?? (event.scopes ?? []).join(', ')),
    el('td', { class: `outcome o-${event.outcome}` }, event.outcome),
    el('td', { class: 'num' }, event.status),
    el('td', { class: 'num' }, formatBytes(event.bytes)),
    el('td', { class: 'num' }, event.durationMs.toFixed(1)),
  );
  return [summary, detail];
}

function select(name, options, value) {
  return el(
    'select',
    { name },
    options.map((o) => el('option', { value: o, selected: o === value }, o || 'any')),
  );
}

export async function renderTraffic(root, params) {
  const controller = new AbortController();
  const form = el(
    'form',
    { class: 'filters', id: 'traffic-filters' },
    el(
      'label',
      {},
      'Key prefix',
      el('input', { name: 'keyPrefix', value: params.get('keyPrefix') ?? '', size: 28 }),
    ),
    el('label', {}, 'Operation', el('input', { name: 'op', value: params.get('op') ?? '', size: 22 })),
    el('label', {}, 'Outcome', select('outcome', OUTCOMES, params.get('outcome') ?? '')),
    el('label', {}, 'Client', select('client', CLIENTS, params.get('client') ?? '')),
    el(
      'label',
      {},
      'Entry id',
      el('input', { name: 'entryId', value: params.get('entryId') ?? '', size: 6 }),
    ),
    el('button', { type: 'submit' }, 'Filter'),
  );
  const state = el('span', { class: 'muted', id: 'traffic-state' }, 'connecting…');
  const body = el('tbody', { id: 'traffic-rows' });
  root.append(
    el('h2', {}, 'Traffic ', state),
    form,
    el(
      'table',
      {},
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          ['Time', 'Client', 'Operation', 'Key / reason', 'Scope', 'Outcome', 'Status', 'Size', 'ms'].map(
            (h) => el('th', {}, h),
          ),
        ),
      ),
      body,
    ),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    for (const f of FIELDS) {
      const v = new FormData(form).get(f);
      if (v) q.set(f, v);
    }
    location.hash = `traffic?${q}`;
  });
  const q = new URLSearchParams();
  for (const f of FIELDS) if (params.get(f)) q.set(f, params.get(f));
  q.set('limit', '300');
  stream(
    `/_admin/traffic/stream?${q}`,
    (event) => {
      body.prepend(...row(event));
      while (body.rows.length > MAX_ROWS * 2) body.lastElementChild.remove();
    },
    { signal: controller.signal, onState: (s) => (state.textContent = s) },
  );
  return () => controller.abort();
}
