import type { Dispatcher } from 'undici';

/**
 * The controller the caller of a retried request sees: one for all attempts. Pause, resume and abort go to
 * the current attempt's controller; an abort between attempts is reported through `onAbort`.
 */
export class ProxyController implements Dispatcher.DispatchController {
  target: Dispatcher.DispatchController | undefined;
  onAbort: ((reason: Error) => void) | undefined;
  #paused = false;
  #aborted = false;
  #reason: Error | null = null;

  setTarget(target: Dispatcher.DispatchController): void {
    this.target = target;
    if (this.#aborted) target.abort(this.#reason ?? new Error('aborted'));
    else if (this.#paused) target.pause();
  }
  get aborted(): boolean {
    return this.#aborted;
  }
  get paused(): boolean {
    return this.#paused;
  }
  get reason(): Error | null {
    return this.#reason;
  }
  abort(reason: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.onAbort?.(reason);
  }
  pause(): void {
    this.#paused = true;
    this.target?.pause();
  }
  resume(): void {
    this.#paused = false;
    this.target?.resume();
  }
}
