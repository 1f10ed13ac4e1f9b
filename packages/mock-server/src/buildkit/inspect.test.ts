import { afterEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../testing/twirp-helpers.js';

let t: TestApp;
afterEach(async () => {
  await t.app.close();
});

describe('GET /_admin/buildkit', () => {
  it('decodes an index: its layers with media types and sizes, which blobs are missing, and unused blob entries', async () => {
    t = await createTestApp();
    const layer = (blob: string, size: number) => ({
      blob,
      annotations: {
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        diffID: `${blob}-d`,
        size,
        createdAt: '2026-01-01T00:00:00Z',
      },
    });
    const config = {
      layers: [{ ...layer('sha256:aa', 10), parent: -1 }, layer('sha256:bb', 20), layer('sha256:aa', 10)],
      records: [{ digest: 'sha256:r0' }, { digest: 'sha256:r1', layers: [{ layer: 1 }] }],
    };
    await t.save('buildkit-blob-1-sha256:aa', 'x'.repeat(10));
    await t.save('buildkit-blob-1-sha256:unused', 'y');
    await t.save('index-buildkit-1-f921bd05#1', JSON.stringify(config));
    await t.save('index-broken-1-f921bd05#1', 'not json');
    const view = (await t.app.inject({ method: 'GET', url: '/_admin/buildkit' })).json();
    const index = view.indexes.find((i: { key: string }) => i.key.startsWith('index-buildkit'));
    expect(index).toMatchObject({ records: 2, recordsWithLayers: 1, totalLayerBytes: 30, missingLayers: 1 });
    expect(index.layers.map((l: { blob: string; present: boolean }) => [l.blob, l.present])).toEqual([
      ['sha256:aa', true],
      ['sha256:bb', false],
    ]);
    expect(index.layers[0].mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    expect(view.indexes.find((i: { key: string }) => i.key.startsWith('index-broken')).error).toMatch(
      /not a BuildKit cache config/,
    );
    expect(view.unused).toBe(1);
    expect(view.blobs.find((b: { key: string }) => b.key.endsWith('unused')).usedBy).toEqual([]);
  });
});
