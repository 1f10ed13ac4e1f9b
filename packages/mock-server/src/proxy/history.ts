/**
 * What the proxy saw saved in this run (Create, then Finalize), so that a later miss can be explained from
 * the traffic alone: the proxy cannot see the upstream's store, only the calls that went through it.
 */
import type { MissExplanation } from '../journal/types.js';

interface Save {
  readonly key: string;
  readonly version: string;
  readonly scope: string | undefined;
  readonly at: string;
  committed: boolean;
}

export interface MissQuery {
  readonly key: string;
  readonly restoreKeys: readonly string[];
  readonly version: string;
  /** Scopes the token can read, in order. */
  readonly scopes: readonly string[];
}

export interface SaveHistory {
  created(key: string, version: string, scope: string | undefined): void;
  finalized(key: string, version: string, scope: string | undefined): void;
  /** The scope an earlier save of this key and version went to, if one went through the proxy. */
  scopeOf(key: string, version: string): string | undefined;
  explain(query: MissQuery): MissExplanation;
}

const short = (v: string) => (v.length > 12 ? `${v.slice(0, 12)}…` : v);

/** Remembers at most `limit` saves (the oldest are forgotten first). */
export function createSaveHistory(limit = 50_000): SaveHistory {
  const saves: Save[] = [];
  const find = (key: string, version: string) =>
    saves.findLast((s) => s.key === key && s.version === version);

  const explainKey = (candidate: string, prefix: boolean, q: MissQuery): MissExplanation | undefined => {
    const same = saves.filter((s) => (prefix ? s.key.startsWith(candidate) : s.key === candidate));
    if (same.length === 0) return undefined;
    const base = { key: candidate, basis: 'traffic' as const };
    const ofVersion = same.filter((s) => s.version === q.version);
    if (ofVersion.length === 0) {
      const other = same.at(-1)!;
      return {
        ...base,
        reason: 'version-mismatch',
        foundVersion: other.version,
        ...(other.scope !== undefined ? { scope: other.scope } : {}),
        message:
          `${other.key} was saved earlier in this run with version ${short(other.version)}, ` +
          `this lookup asked for ${short(q.version)} (another compression, paths or client)`,
      };
    }
    const committed = ofVersion.filter((s) => s.committed);
    if (committed.length === 0) {
      const s = ofVersion.at(-1)!;
      return {
        ...base,
        reason: 'pending',
        ...(s.scope !== undefined ? { scope: s.scope } : {}),
        message: `${s.key} was reserved earlier in this run (${s.at}) but its upload was never finalized`,
      };
    }
    const unreadable = committed.filter((s) => s.scope !== undefined && !q.scopes.includes(s.scope));
    if (unreadable.length === committed.length) {
      const s = unreadable.at(-1)!;
      return {
        ...base,
        reason: 'scope-not-readable',
        scope: s.scope!,
        message: `${s.key} was saved earlier in this run to ${s.scope}, which this token cannot read`,
      };
    }
    const s = committed.at(-1)!;
    return {
      ...base,
      reason: 'no-such-key',
      ...(s.scope !== undefined ? { scope: s.scope } : {}),
      message: `${s.key} was saved earlier in this run (${s.at}) yet the service no longer returns it (removed upstream?)`,
    };
  };

  return {
    created(key, version, scope) {
      saves.push({ key, version, scope, at: new Date().toISOString(), committed: false });
      if (saves.length > limit) saves.splice(0, saves.length - limit);
    },
    finalized(key, version, scope) {
      const s = saves.findLast((x) => x.key === key && x.version === version && x.scope === scope);
      if (s) s.committed = true;
      else saves.push({ key, version, scope, at: new Date().toISOString(), committed: true });
    },
    scopeOf: (key, version) => find(key, version)?.scope,
    explain(q) {
      const found =
        explainKey(q.key, false, q) ??
        explainKey(q.key, true, q) ??
        q.restoreKeys.reduce<MissExplanation | undefined>((e, k) => e ?? explainKey(k, true, q), undefined);
      if (found) return found;
      return {
        reason: 'no-such-key',
        key: q.key,
        basis: 'traffic',
        message:
          'nothing with this key or its restore keys was saved through the proxy in this run ' +
          "(the proxy sees the traffic, not the service's store)",
      };
    },
  };
}
