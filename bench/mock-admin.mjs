// Untimed clean-up between benchmark runs, through the mock's admin API.

/**
 * Deletes the entries of `key` from the mock at `mockUrl`, then moves its clock past the expiry of the
 * download URLs issued for them (the admin API sweeps after an advance), so their blobs go too. Targets
 * that keep old blobs keep more page cache, and the next run to write fresh memory pays for reclaiming it.
 */
export async function dropMockEntry(mockUrl, key) {
  const admin = async (path, init) => {
    const res = await fetch(`${mockUrl}/_admin/${path}`, init);
    if (!res.ok) throw new Error(`admin ${path}: ${res.status}`);
    return res.status === 204 ? undefined : res.json();
  };
  const { entries } = await admin(`entries?key=${encodeURIComponent(key)}`);
  for (const e of entries) await admin(`entries/${e.id}`, { method: 'DELETE' });
  await admin('clock/advance', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ by: '11m' }),
  });
}
