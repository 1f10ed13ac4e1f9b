// The key space of the lookup benchmark, shared by bench/preload.mjs (writes it) and
// bench/mock-server.mjs (queries it).
import { createHash } from 'node:crypto';

export const REPOSITORY_ID = '1';
export const SCOPE = 'refs/heads/main';
/** A realistic version: @actions/cache sends a SHA-256 hex of paths + compression method. */
export const VERSION = createHash('sha256').update('bench paths|zstd-without-long').digest('hex');
export const BLOB_BYTES = 16;

/** `bench-Linux-npm-<i>-` : a prefix that matches entry i only (the next character is a hex digit). */
export const entryPrefix = (i) => `bench-Linux-npm-${i}-`;
/** Shaped like a real key: prefix + a lockfile hash. */
export const entryKey = (i) => `${entryPrefix(i)}${createHash('sha256').update(String(i)).digest('hex')}`;
