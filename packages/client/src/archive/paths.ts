/**
 * Resolves `@actions/cache` path patterns the way `@actions/glob` does with `implicitDescendants: false`:
 * one pattern per entry, `#` comments and blank lines skipped, `!` excludes, `~` is the home directory,
 * `*` `?` `[...]` within a segment and `**` across segments, dot files matched, no brace expansion.
 * Results are made relative to the working directory (`.` for itself) with `/` separators.
 */
import type { Dirent } from 'node:fs';
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';

export interface ResolvePathsOptions {
  /** Root of relative patterns. Default `process.cwd()`. */
  cwd?: string;
  /** Results are relative to this directory (`GITHUB_WORKSPACE`). Default `cwd`. */
  workingDirectory?: string;
  /** Replaces a leading `~`. Default `os.homedir()`. */
  homeDirectory?: string;
}

const MAGIC = /[*?[]/;

function segmentRegex(seg: string): RegExp {
  let re = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const close = seg.indexOf(']', i + 2);
      if (close === -1) {
        re += '\\[';
        continue;
      }
      let body = seg.slice(i + 1, close);
      if (body.startsWith('!')) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\/g, '\\\\')}]`;
      i = close;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

async function entries(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

async function expand(root: string, segs: readonly string[], out: string[]): Promise<void> {
  const seenDirs = new Set<string>();
  const walk = async (current: string, i: number): Promise<void> => {
    if (i === segs.length) {
      out.push(current);
      return;
    }
    const seg = segs[i]!;
    if (seg === '**') {
      await walk(current, i + 1);
      if (!(await isDirectory(current))) return;
      const real = await realpath(current).catch(() => current);
      const key = `${real}\0${i}`;
      if (seenDirs.has(key)) return; // symlink loop
      seenDirs.add(key);
      for (const e of await entries(current)) {
        const child = path.join(current, e.name);
        if (e.isDirectory() || (e.isSymbolicLink() && (await isDirectory(child)))) await walk(child, i);
        else if (i + 1 === segs.length) out.push(child);
      }
      return;
    }
    if (!MAGIC.test(seg)) {
      const child = path.join(current, seg);
      if (await exists(child)) await walk(child, i + 1);
      return;
    }
    const re = segmentRegex(seg);
    for (const e of await entries(current)) {
      if (re.test(e.name)) await walk(path.join(current, e.name), i + 1);
    }
  };
  await walk(root, 0);
}

function absolutePattern(pattern: string, cwd: string, home: string): string {
  let p = pattern;
  if (p === '~' || p.startsWith('~/')) p = home + p.slice(1);
  return path.resolve(cwd, p);
}

async function matches(pattern: string, cwd: string, home: string): Promise<string[]> {
  const abs = absolutePattern(pattern, cwd, home);
  const { root } = path.parse(abs);
  const segs = abs
    .slice(root.length)
    .split(path.sep)
    .filter((s) => s !== '');
  const out: string[] = [];
  await expand(root, segs, out);
  return out;
}

/** Resolves patterns into the relative paths `tar` gets in its manifest, in discovery order, deduplicated. */
export async function resolvePaths(
  patterns: readonly string[],
  options: ResolvePathsOptions = {},
): Promise<string[]> {
  const cwd = options.cwd ?? process.cwd();
  const workingDirectory = options.workingDirectory ?? cwd;
  const home = options.homeDirectory ?? homedir();
  const included: string[] = [];
  const excluded = new Set<string>();
  for (const raw of patterns.flatMap((p) => p.split('\n'))) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('!')) {
      for (const m of await matches(line.slice(1).trim(), cwd, home)) excluded.add(m);
    } else {
      included.push(...(await matches(line, cwd, home)));
    }
  }
  const seen = new Set<string>();
  const result: string[] = [];
  for (const file of included) {
    if (excluded.has(file) || seen.has(file)) continue;
    seen.add(file);
    const rel = path.relative(workingDirectory, file).split(path.sep).join('/');
    result.push(rel === '' ? '.' : rel);
  }
  return result;
}
