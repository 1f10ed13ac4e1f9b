import type { TrafficJournal } from '../journal/journal.js';
import type { BlobUrlRegistry } from './blob-urls.js';
import type { Upstream } from './forward.js';
import type { SaveHistory } from './history.js';
import type { EntrySaver } from './save-entries.js';

/** Whether blob transfers go through the proxy (`proxy`) or straight to the signed URLs (`direct`). */
export type BlobMode = 'proxy' | 'direct';

/** What the proxy's routes share. */
export interface ProxyContext {
  readonly upstream: Upstream;
  /** The upstream service's base URL (ends with `/`); Twirp and other paths resolve against it. */
  readonly base: URL;
  /** `base.origin`, the one upstream fact events carry. */
  readonly origin: string;
  readonly blobs: BlobMode;
  /** Origin of the proxy in rewritten URLs; default: the Host each request came to. */
  readonly publicUrl: string | undefined;
  readonly registry: BlobUrlRegistry;
  readonly history: SaveHistory;
  readonly journal: TrafficJournal;
  readonly saver: EntrySaver | undefined;
  readonly twirpBodyLimitBytes: number;
}
