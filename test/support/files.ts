import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';

/** Writes `bytes` of incompressible data to `file`, streaming in 4 MiB chunks. */
export async function writeRandomFile(file: string, bytes: number): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  async function* chunks() {
    for (let left = bytes; left > 0; left -= 4 << 20) yield randomBytes(Math.min(left, 4 << 20));
  }
  await pipeline(chunks(), createWriteStream(file));
}

/** Creates files from a `{ relativePath: content }` map under `root`. */
export async function writeTree(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, name)), { recursive: true });
    await writeFile(join(root, name), content);
  }
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/** `{ relativePath: sha256 }` of every file under `root`, for byte-for-byte comparisons. */
export async function digestTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if ((await stat(full)).size < 1 << 20)
        out[relative(root, full)] = createHash('sha256')
          .update(await readFile(full))
          .digest('hex');
      else out[relative(root, full)] = await sha256File(full);
    }
  };
  await walk(root);
  return out;
}
