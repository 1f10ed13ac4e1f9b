// Preloaded into a server under test (`node --import ./bench/loop-delay.mjs …`): samples its event-loop
// delay (perf_hooks.monitorEventLoopDelay, 1 ms resolution). SIGUSR2 prints the delays since the last
// SIGUSR2 as one stderr line {"loopDelay":{"p50","p99","max","count"}} (ms) and starts a new window.
// How long a request that arrives at a random moment waits before the server even looks at it.
import { monitorEventLoopDelay } from 'node:perf_hooks';

const h = monitorEventLoopDelay({ resolution: 1 });
h.enable();
process.on('SIGUSR2', () => {
  const ms = (ns) => Math.round(ns / 1e4) / 100;
  process.stderr.write(
    `${JSON.stringify({ loopDelay: { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), count: h.count } })}\n`,
  );
  h.reset();
});
