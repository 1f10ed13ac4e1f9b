import type { IncomingHttpHeaders } from 'node:http';
import { header, parseContentRange } from './headers.js';

/**
 * Where a GET body stands, so that one broken after its headers is resumed with `Range` from the first
 * missing byte, `If-Match` on a strong ETag: the answer must be a 206 that starts at that byte.
 */
export class ResumePoint {
  /** First byte of the range the response delivers. */
  start = 0;
  /** Last byte of it (inclusive); undefined when the response gave no length. */
  end: number | undefined;
  etag: string | undefined;

  /** Remembers the range and the validator of a 200/206 response. */
  remember(status: number, headers: IncomingHttpHeaders): void {
    if (status !== 200 && status !== 206) return;
    const cr = status === 206 ? parseContentRange(header(headers, 'content-range')) : undefined;
    const len = header(headers, 'content-length');
    this.start = cr?.start ?? 0;
    this.end = cr?.end ?? (len !== undefined ? Number(len) - 1 : undefined);
    const etag = header(headers, 'etag');
    this.etag = etag !== undefined && !etag.startsWith('W/') ? etag : undefined;
  }

  /** Whether bytes from `position` on are still to come. */
  canResumeAt(position: number): boolean {
    return this.end !== undefined && position <= this.end;
  }

  /** The request headers asking for the rest from `position`. */
  headers(position: number): Record<string, string> {
    const extra: Record<string, string> = { range: `bytes=${position}-${this.end ?? ''}` };
    if (this.etag !== undefined) extra['if-match'] = this.etag;
    return extra;
  }

  /** Undefined when the answer to a resume carries on at `position`; else the error the request fails with. */
  refusal(status: number, headers: IncomingHttpHeaders, position: number): Error | undefined {
    const raw = header(headers, 'content-range');
    const cr = parseContentRange(raw);
    if (status === 206 && cr !== undefined && cr.start === position) return undefined;
    return new Error(`resume at byte ${position} answered HTTP ${status} ${raw ?? ''}`.trim());
  }
}
