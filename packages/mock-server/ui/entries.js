import { getJson, send } from './api.js';
import { el, errorBox, formatBytes, shorten, table, time } from './util.js';

export async function renderEntries(root) {
  root.append(el('h2', {}, 'Entries'));
  let entries;
  let policies;
  try {
    [{ entries }, policies] = await Promise.all([getJson('/_admin/entries'), getJson('/_admin/policies')]);
  } catch (err) {
    root.append(errorBox(err));
    return;
  }
  if (entries.length === 0) root.append(el('p', { class: 'muted' }, 'No entries yet.'));
  const groups = new Map();
  for (const e of entries) {
    const g = `${e.repository ?? `repository ${e.repositoryId}`} · ${e.scope}`;
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(e);
  }
  const expiry = (e) => {
    if (e.state !== 'committed' || policies.idleTtlMs === null || !e.lastAccessedAt) return '';
    return time(new Date(Date.parse(e.lastAccessedAt) + policies.idleTtlMs).toISOString());
  };
  for (const [name, list] of groups) {
    root.append(
      el('h3', {}, name),
      table(
        ['Id', 'Key', 'Version', 'State', 'Size ', 'Created', 'Last accessed', 'Expires', ''],
        list.map((e) =>
          el(
            'tr',
            { 'data-entry': e.id },
            el('td', { class: 'num' }, e.id),
            el('td', {}, el('code', { title: e.key }, shorten(e.key, 72))),
            el('td', {}, el('code', { title: e.version }, shorten(e.version, 14))),
            el('td', {}, e.state),
            el('td', { class: 'num' }, formatBytes(e.sizeBytes)),
            el('td', { class: 'mono' }, time(e.createdAt)),
            el('td', { class: 'mono' }, time(e.lastAccessedAt)),
            el('td', { class: 'mono' }, expiry(e)),
            el(
              'td',
              {},
              el('a', { href: `#traffic?entryId=${e.id}` }, 'requests'),
              ' ',
              el(
                'button',
                {
                  type: 'button',
                  class: 'delete',
                  onclick: async (event) => {
                    if (!confirm(`Delete entry ${e.id} (${e.key})?`)) return;
                    event.target.disabled = true;
                    try {
                      await send('DELETE', `/_admin/entries/${e.id}`);
                      event.target.closest('tr').remove();
                    } catch (err) {
                      event.target.disabled = false;
                      alert(err.message);
                    }
                  },
                },
                'delete',
              ),
            ),
          ),
        ),
      ),
    );
  }
}
