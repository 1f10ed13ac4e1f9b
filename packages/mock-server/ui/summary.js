import { getJson } from './api.js';
import { el, errorBox, formatBytes, pct, shorten, table, time } from './util.js';

const stat = (label, value) =>
  el('div', { class: 'stat' }, el('div', { class: 'value' }, value), el('div', { class: 'label' }, label));

export async function renderSummary(root) {
  root.append(el('h2', {}, 'Summary'));
  let s;
  try {
    s = await getJson('/_admin/summary');
  } catch (err) {
    root.append(errorBox(err));
    return;
  }
  root.append(
    el(
      'div',
      { class: 'grid' },
      stat('requests', s.requests),
      stat('lookups', s.lookups.lookups),
      stat('hit ratio', pct(s.lookups.hitRatio, s.lookups.lookups)),
      stat('uploaded', formatBytes(s.bytesUploaded)),
      stat('downloaded', formatBytes(s.bytesDownloaded)),
      stat('errors', s.errors),
    ),
    el('h3', {}, 'Hit ratio by client'),
    table(
      ['Client', 'Requests ', 'Lookups ', 'Hits ', 'Misses ', 'Hit ratio '],
      s.byClient.map((c) =>
        el(
          'tr',
          {},
          el('td', {}, c.client),
          ...[c.requests, c.lookups, c.hits, c.misses, pct(c.hitRatio, c.lookups)].map((v) =>
            el('td', { class: 'num' }, v),
          ),
        ),
      ),
    ),
    el('h3', {}, 'Hit ratio by key prefix'),
    table(
      ['Prefix', 'Lookups ', 'Hits ', 'Misses ', 'Hit ratio '],
      s.byKeyPrefix.map((p) =>
        el(
          'tr',
          {},
          el('td', {}, el('code', {}, p.keyPrefix)),
          ...[p.lookups, p.hits, p.misses, pct(p.hitRatio, p.lookups)].map((v) =>
            el('td', { class: 'num' }, v),
          ),
        ),
      ),
    ),
    el('h3', {}, 'Most frequent miss reasons'),
    table(
      ['Reason', 'Misses ', 'Example'],
      s.missReasons.map((r) =>
        el(
          'tr',
          { class: 'miss-reason' },
          el('td', {}, r.reason),
          el('td', { class: 'num' }, r.count),
          el('td', { class: 'reason' }, r.example),
        ),
      ),
    ),
    el('h3', {}, 'Slowest requests'),
    table(
      ['Time', 'Client', 'Operation', 'Key', 'Outcome', 'ms '],
      s.slowest.map((e) =>
        el(
          'tr',
          {},
          el('td', { class: 'mono' }, time(e.time)),
          el('td', {}, e.client),
          el('td', {}, e.op),
          el('td', {}, el('code', {}, shorten(e.key ?? '', 60))),
          el('td', { class: `outcome o-${e.outcome}` }, e.outcome),
          el('td', { class: 'num' }, e.durationMs.toFixed(1)),
        ),
      ),
    ),
    el(
      'p',
      { class: 'muted' },
      `Removed: ${Object.entries(s.removals)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}. The journal keeps the last ${s.capacity} requests.`,
    ),
  );
}
