import { renderBuildkit } from './buildkit.js';
import { renderEntries } from './entries.js';
import { renderSummary } from './summary.js';
import { renderTraffic } from './traffic.js';

const PAGES = {
  traffic: renderTraffic,
  entries: renderEntries,
  buildkit: renderBuildkit,
  summary: renderSummary,
};
let leave;

async function show() {
  const name = (location.hash.slice(1).split('?')[0] || 'traffic').toLowerCase();
  const render = PAGES[name] ?? renderTraffic;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.page === name);
  leave?.();
  leave = undefined;
  const root = document.getElementById('page');
  root.replaceChildren();
  root.dataset.page = name;
  leave = await render(root, new URLSearchParams(location.hash.split('?')[1] ?? ''));
}

window.addEventListener('hashchange', show);
show();
