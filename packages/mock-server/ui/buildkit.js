import { getJson } from './api.js';
import { el, errorBox, formatBytes, shorten, table, time } from './util.js';

export async function renderBuildkit(root) {
  root.append(el('h2', {}, 'BuildKit cache'));
  let view;
  try {
    view = await getJson('/_admin/buildkit');
  } catch (err) {
    root.append(errorBox(err));
    return;
  }
  if (view.indexes.length === 0)
    root.append(el('p', { class: 'muted' }, 'No BuildKit cache index (index-…) entries yet.'));
  for (const index of view.indexes) {
    const card = el(
      'div',
      { class: 'card index', 'data-index': index.entryId },
      el(
        'h3',
        {},
        el('code', {}, index.key),
        ' ',
        el(
          'span',
          { class: 'muted' },
          `${index.scope} · entry ${index.entryId} · ${formatBytes(index.sizeBytes)} · ${time(index.createdAt)}`,
        ),
      ),
    );
    if (index.error) card.append(el('div', { class: 'missing' }, index.error));
    else {
      card.append(
        el(
          'p',
          {},
          `${index.layers.length} layers, ${formatBytes(index.totalLayerBytes)}; ${index.records} cache records (${index.recordsWithLayers} with layers)`,
          index.missingLayers > 0
            ? el(
                'strong',
                { class: 'missing' },
                ` · ${index.missingLayers} layer blobs missing from the store`,
              )
            : el('span', { class: 'present' }, ' · all layer blobs present'),
        ),
        table(
          ['Layer blob', 'Media type', 'Size ', 'Created', 'In store'],
          index.layers.map((l) =>
            el(
              'tr',
              { class: 'layer' },
              el('td', {}, el('code', { title: l.blob }, shorten(l.blob, 30))),
              el('td', {}, l.mediaType ?? ''),
              el('td', { class: 'num' }, formatBytes(l.sizeBytes)),
              el('td', { class: 'mono' }, time(l.createdAt)),
              el(
                'td',
                { class: l.present ? 'present' : 'missing' },
                l.present
                  ? `entry ${l.entryId}${l.entryScope !== index.scope ? ` (${l.entryScope})` : ''}`
                  : 'missing',
              ),
            ),
          ),
        ),
      );
    }
    root.append(card);
  }
  root.append(el('h2', {}, `Layer blob entries (${view.blobs.length}, ${view.unused} used by no index)`));
  if (view.blobs.length > 0) {
    const keyOf = new Map(view.indexes.map((i) => [i.entryId, i.key]));
    const sorted = [...view.blobs].sort(
      (a, b) => (a.usedBy.length === 0) - (b.usedBy.length === 0) || a.entryId - b.entryId,
    );
    root.append(
      table(
        ['Entry', 'Key', 'Scope', 'Size ', 'Used by'],
        sorted.map((b) =>
          el(
            'tr',
            { class: b.usedBy.length === 0 ? 'unused' : 'used' },
            el('td', { class: 'num' }, b.entryId),
            el('td', {}, el('code', { title: b.key }, shorten(b.key, 48))),
            el('td', {}, b.scope),
            el('td', { class: 'num' }, formatBytes(b.sizeBytes)),
            el(
              'td',
              { class: b.usedBy.length === 0 ? 'muted' : '' },
              b.usedBy.length === 0 ? 'no index' : b.usedBy.map((id) => keyOf.get(id) ?? id).join(', '),
            ),
          ),
        ),
      ),
    );
  }
}
