/** The data directory's secrets: the token secret and the storage account key, made once, kept 0600. */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface Secrets {
  tokenSecret: Buffer;
  accountKey: Buffer;
}

/** Loads `<dataDir>/secrets.json`, creating it (mode 0600) with fresh random keys the first time. */
export async function loadSecrets(dataDir: string): Promise<Secrets> {
  const file = join(dataDir, 'secrets.json');
  try {
    const json = JSON.parse(await readFile(file, 'utf8')) as { tokenSecret: string; accountKey: string };
    return {
      tokenSecret: Buffer.from(json.tokenSecret, 'base64'),
      accountKey: Buffer.from(json.accountKey, 'base64'),
    };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const secrets = { tokenSecret: randomBytes(32), accountKey: randomBytes(64) };
  await mkdir(dataDir, { recursive: true });
  const body = JSON.stringify({
    tokenSecret: secrets.tokenSecret.toString('base64'),
    accountKey: secrets.accountKey.toString('base64'),
  });
  await writeFile(file, `${body}\n`, { mode: 0o600, flag: 'wx' }).catch(
    async (err: NodeJS.ErrnoException) => {
      if (err.code === 'EEXIST') return; // another process won the race; read theirs below
      throw err;
    },
  );
  return loadSecrets(dataDir);
}
