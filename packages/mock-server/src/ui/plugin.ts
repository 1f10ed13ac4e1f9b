/**
 * The web UI at `/_ui/`: plain HTML, CSS and JavaScript modules shipped in the package's `ui/` folder
 * (no build step, nothing fetched from the internet). Same origin only: it talks to `/_admin/…`.
 */
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync } from 'fastify';

export interface UiPluginOptions {
  /** Folder of the assets. Default: the package's `ui/`. */
  readonly dir?: string;
}

/** `ui/` of the package, from `src/ui/` and from `dist/ui/` alike. */
export const UI_DIR = fileURLToPath(new URL('../../ui/', import.meta.url));

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

export const uiPlugin: FastifyPluginAsync<UiPluginOptions> = async (app, options) => {
  const dir = options.dir ?? UI_DIR;
  // Read once, at the first request for the UI rather than at start: a handful of small files,
  // served from memory (no path ever reaches the file system).
  let files: Promise<Map<string, { type: string; body: Buffer }>> | undefined;
  const readAll = async () => {
    const read = new Map<string, { type: string; body: Buffer }>();
    for (const name of await readdir(dir)) {
      const type = TYPES[extname(name)];
      if (type) read.set(name, { type, body: await readFile(join(dir, name)) });
    }
    return read;
  };
  const serve = async (name: string) => {
    files ??= readAll().catch((err: unknown) => {
      files = undefined; // tried again by the next request
      throw err;
    });
    return (await files).get(name);
  };

  app.get('/_ui', async (_request, reply) => reply.redirect('/_ui/', 302));
  app.get('/_ui/', async (_request, reply) => {
    const file = await serve('index.html');
    if (!file) return reply.code(404).send();
    return reply.headers(SECURITY_HEADERS).type(file.type).send(file.body);
  });
  // A wildcard, not a parameter: the admin guard serves static files under `/_ui/` without the admin
  // token only from non-parametric routes. Only names of the files read above ever match.
  app.get('/_ui/*', async (request, reply) => {
    const name = (request.params as { '*': string })['*'];
    const file = await serve(name);
    if (!file) {
      return reply
        .code(404)
        .type('application/json')
        .send(JSON.stringify({ code: 'not_found', msg: `no UI file "${name}"` }));
    }
    return reply.headers(SECURITY_HEADERS).type(file.type).send(file.body);
  });
};
