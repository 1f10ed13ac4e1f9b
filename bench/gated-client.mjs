// A client of bench/blob-client.mjs (upload, download) or bench/get-client.mjs (get) that loads its
// modules, prints `READY`, and starts its transfer only when a line arrives on stdin: many clients in
// parallel then start together, none paying for another's start-up of Node.js and the Azure SDK.
//
//   node bench/gated-client.mjs upload|download|get <url> <file>   → READY, then blob-client's JSON line
import '@azure/storage-blob';
import { createInterface } from 'node:readline';

const op = process.argv[2];
process.stdout.write('READY\n');
await new Promise((resolve) => createInterface({ input: process.stdin }).once('line', resolve));
process.stdin.destroy();
await import(op === 'get' ? './get-client.mjs' : './blob-client.mjs');
