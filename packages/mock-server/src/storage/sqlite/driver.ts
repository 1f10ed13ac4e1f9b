import type BetterSqlite3 from 'better-sqlite3';

/**
 * The better-sqlite3 build for this Node.js: 13 (N-API, prebuilt) on Node.js 22 and later, 12 on
 * Node.js 20. 13 crashes on Node.js 20, and 12's statements can abort Node.js 24 when the garbage
 * collector finalizes them during teardown (`RemoveEnvironmentCleanupHook` assertion). Both expose
 * the same API; `better-sqlite3-node20` is an npm alias of 12.x, an optional dependency because it
 * compiles at install (a machine without a compiler still installs, and then runs on Node.js 22+).
 */
const major = Number(process.versions.node.split('.')[0]);
const loaded: { default: typeof BetterSqlite3 } =
  major >= 22
    ? await import('better-sqlite3')
    : await import('better-sqlite3-node20' as string).catch((err: unknown) => {
        throw new Error(
          `SQLite storage on Node.js ${process.versions.node} needs better-sqlite3 12 (the optional dependency better-sqlite3-node20), which did not install or load; install a C++ compiler and reinstall, or run on Node.js 22 or later`,
          { cause: err },
        );
      });

export const Database: typeof BetterSqlite3 = loaded.default;
export type Database = BetterSqlite3.Database;
