#!/usr/bin/env node
// The `gha-cache-mock` command: runs the compiled CLI. In a clone of the repository, `pnpm install` compiles it.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(
    'gha-cache-mock: not built yet (no dist/); run `npx -y pnpm@10.34.8 run build` in the repository\n',
  );
  process.exit(1);
}
await import(entry.href);
