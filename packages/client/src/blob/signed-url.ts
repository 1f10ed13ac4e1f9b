/** The signed (SAS) URL of a download, and the one rule for reloading it when it expires. */
import { BlobError } from '../errors.js';

/** One answer of the blob store to a request sent with the signed URL. */
export interface SignedAnswer<T> {
  status: number;
  /** Releases the answer when the request goes again with a fresh URL (or the reload fails). */
  discard?: () => Promise<void>;
  /** What the answer comes to when it stands. */
  result: () => T | Promise<T>;
}

function isAuthFailure(status: number): boolean {
  return status === 401 || status === 403;
}

export class SignedUrl {
  #url: string;
  #refreshing: Promise<string> | undefined;
  #refreshed = false;

  /**
   * `refresh` returns a fresh URL for the same blob, or undefined when the entry is gone; it is called at
   * most once.
   */
  constructor(
    url: string,
    readonly refresh: (() => Promise<string | undefined>) | undefined,
  ) {
    this.#url = url;
  }

  /** Whether the URL had to be reloaded. */
  get refreshed(): boolean {
    return this.#refreshed;
  }

  /**
   * Sends a request with the current URL, through `attempt`. The one reload rule: an answer 401/403 (the
   * SAS expired) sends it again with a fresh URL, asked of `refresh` once for the whole download and shared
   * by all its requests (one refused with a URL another request already replaced goes again with the new
   * one). When no fresh URL can be had the refusal stands; when the entry is gone, a {@link BlobError}
   * `CacheEntryGone` is thrown.
   */
  async send<T>(attempt: (url: URL) => Promise<SignedAnswer<T>>): Promise<T> {
    for (;;) {
      const url = this.#url;
      const answer = await attempt(new URL(url));
      if (isAuthFailure(answer.status)) {
        let fresh: string | undefined;
        try {
          fresh = await this.#renew(url);
        } catch (err) {
          await answer.discard?.();
          throw err;
        }
        if (fresh !== undefined) {
          await answer.discard?.();
          continue;
        }
      }
      // A refusal that stands keeps its body for the error (a discarded body cannot be read again).
      return answer.result();
    }
  }

  /** A fresh URL once; undefined when refreshing is impossible or was already done for `stale`. */
  async #renew(stale: string): Promise<string | undefined> {
    if (this.#url !== stale) return this.#url;
    if (this.#refreshed || !this.refresh) return undefined;
    this.#refreshing ??= this.refresh().then((u) => {
      if (u === undefined)
        throw new BlobError({
          operation: 'RefreshUrl',
          url: '',
          httpStatus: 404,
          azureCode: 'CacheEntryGone',
        });
      this.#url = u;
      this.#refreshed = true;
      return u;
    });
    return this.#refreshing;
  }
}
