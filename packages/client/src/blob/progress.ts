/** Progress of a transfer, reported by `onProgress`. */
export interface TransferProgress {
  phase: 'upload' | 'download';
  transferredBytes: number;
  /** Undefined while the size is unknown (uploads from a stream). */
  totalBytes: number | undefined;
}

/** Counts the bytes of one transfer and reports each change. */
export class TransferCounter {
  transferred = 0;
  constructor(
    readonly phase: TransferProgress['phase'],
    public total: number | undefined,
    readonly onProgress: ((p: TransferProgress) => void) | undefined,
  ) {}

  /** `n` more bytes (fewer, when negative: a block sent again). */
  add(n: number): void {
    this.transferred += n;
    this.onProgress?.({ phase: this.phase, transferredBytes: this.transferred, totalBytes: this.total });
  }
}
