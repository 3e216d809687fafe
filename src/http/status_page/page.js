// The status page: reads /status every second and draws the pipeline.
// Plain JavaScript, no libraries, nothing fetched but /status. Every text
// from /status goes in through textContent, never as HTML.
'use strict';
(function () {
  const POLL_MS = 1000;
  // Rates are taken over the last few seconds, so one slow poll does not
  // make them jump.
  const RATE_WINDOW_MS = 5000;
  const STATE_RANK = { failed: 7, restarting: 6, paused: 5, starting: 4, degraded: 3, running: 2, idle: 1, stopped: 0 };
  const samples = [];
  let failures = 0;
  let lastOk = 0;
  let drawn = null;

  // --- formatting ---------------------------------------------------------
  function num(n) {
    if (n === null || n === undefined || Number.isNaN(n)) return '–';
    if (Math.abs(n) >= 1e9) return (n / 1e9).toFixed(1) + 'G';
    if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + 'M';
    if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + 'k';
    return String(Math.round(n * 100) / 100);
  }
  function perSec(r) {
    if (r === null) return '…';
    if (r === 0) return '0';
    if (r < 10) return r.toFixed(1);
    return num(Math.round(r));
  }
  function bytes(n) {
    if (n === null || n === undefined) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
  }
  function duration(s) {
    if (s === null || s === undefined || s < 0) return '–';
    s = Math.floor(s);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
    return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
  }
  function percent(f) { return Math.round(Math.max(0, Math.min(1, f)) * 100) + '%'; }

  // --- DOM helpers --------------------------------------------------------
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'cls') e.className = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children || []) if (c) e.appendChild(c);
    return e;
  }
  function badge(state) { return el('span', { cls: 'badge state-' + state, text: state.replace('_', ' '), 'data-field': 'state' }); }
  // A list of figures: [label, shown, raw value, tone, field name].
  function kv(rows) {
    const dl = el('dl', { cls: 'kv' });
    for (const [label, shown, raw, tone, field] of rows) {
      if (shown === null || shown === undefined) continue;
      dl.appendChild(el('dt', { text: label }));
      dl.appendChild(el('dd', { text: shown, cls: tone || null, 'data-field': field || null, 'data-value': raw }));
    }
    return dl;
  }
  function bar(fraction, tone, marker) {
    const f = Math.max(0, Math.min(1, fraction || 0));
    const b = el('div', { cls: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(f * 100) });
    const fill = el('span', { cls: tone || null });
    fill.style.width = (f * 100).toFixed(1) + '%';
    b.appendChild(fill);
    if (marker !== undefined && marker !== null) {
      const m = el('i', { title: 'high water' });
      m.style.left = 'calc(' + (Math.max(0, Math.min(1, marker)) * 100).toFixed(1) + '% - 1px)';
      b.appendChild(m);
    }
    return b;
  }
  function barLabel(left, right) { return el('div', { cls: 'barlabel' }, [el('span', { text: left }), el('span', { text: right })]); }
  function rateLine(r, what, field) {
    return el('div', { cls: 'rate', 'data-field': field, 'data-value': r === null ? '' : r.toFixed(3) }, [
      document.createTextNode(perSec(r) + ' '), el('small', { text: what })]);
  }
  function card(node, name, kind, state, children) {
    const tone = state && STATE_RANK[state] >= 6 ? 'bad' : state && STATE_RANK[state] >= 3 ? 'warn' : '';
    return el('div', { cls: ('card ' + tone).trim(), 'data-node': node }, [
      el('div', { cls: 'head' }, [el('span', { cls: 'name', text: name }), kind ? el('span', { cls: 'kind', text: kind }) : null,
        state ? badge(state) : null]),
    ].concat(children));
  }

  // What ingest accepted from a source and its parts (a notifications
  // source's gap backfill publishes as `<source>/backfill`).
  function ingestOf(s, name) {
    const sum = { events: 0, duplicates: 0 };
    for (const [key, v] of Object.entries(s.ingest || {})) {
      if (key !== name && !key.startsWith(name + '/')) continue;
      sum.events += v.events || 0;
      sum.duplicates += v.duplicates || 0;
    }
    return sum;
  }

  // --- rates ----------------------------------------------------------------
  // The counters each sample keeps, by key; the rate of a key sums its
  // increases over the window, so a counter that restarts from zero (a
  // restarted sink's) does not count backwards.
  function counters(s) {
    const c = {};
    for (const src of (s.topology || {}).sources || []) c['source:' + src.name] = ingestOf(s, src.name).events;
    c.router = (s.router || {}).published || 0;
    for (const l of s.listeners || []) c['listener:' + l.name] = l.queue.delivered;
    for (const comp of s.components || []) {
      const d = comp.detail || {};
      if (comp.kind === 'listener' && typeof d.committed_events === 'number') c['sink:' + comp.name] = d.committed_events;
    }
    const p = (s.service || {}).process || {};
    if (typeof p.cpu_seconds === 'number') c.cpu = p.cpu_seconds;
    return c;
  }
  function remember(s) {
    const t = (s.service && s.service.now_ms) || Date.now();
    samples.push({ t, c: counters(s) });
    while (samples.length > 2 && t - samples[1].t >= RATE_WINDOW_MS) samples.shift();
  }
  function rate(key) {
    if (samples.length < 2) return null;
    let sum = 0;
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1].c[key], b = samples[i].c[key];
      if (typeof b !== 'number') continue;
      sum += typeof a === 'number' && b >= a ? b - a : 0;
    }
    const dt = (samples[samples.length - 1].t - samples[0].t) / 1000;
    return dt > 0 ? sum / dt : null;
  }

  // --- reading /status ------------------------------------------------------
  function worst(states) {
    return states.reduce((w, s) => (w === null || (STATE_RANK[s] || 0) > (STATE_RANK[w] || 0) ? s : w), null);
  }
  function partsOf(s, name) {
    return (s.components || []).filter(c => c.name === name || c.name.startsWith(name + '/'));
  }
  // How far a bulk source is, when it can be told (0 to 1).
  function progressOf(d) {
    if (d.finished === true) return 1;
    if (d.total_bytes > 0) return (d.bytes_received || 0) / d.total_bytes;
    if (typeof d.window === 'string' && typeof d.high_water === 'string') {
      const [a, b] = d.window.split('/').map(x => Date.parse(x));
      const h = Date.parse(d.high_water);
      if (b > a && !Number.isNaN(h)) return (h - a) / (b - a);
    }
    if (d.recordings > 0) return ((d.done_before || 0) + (d.downloaded || 0) + (d.unavailable || 0)) / d.recordings;
    return null;
  }
  function errorLine(c) { return c.last_error ? el('div', { cls: 'error', text: c.last_error, 'data-field': 'last_error' }) : null; }

  // --- drawing --------------------------------------------------------------
  function sourceCard(s, src) {
    const parts = partsOf(s, src.name);
    const state = worst(parts.map(c => c.state)) || 'starting';
    const own = parts.find(c => c.name === src.name) || { detail: {}, restarts: 0 };
    const d = own.detail || {};
    const ingest = ingestOf(s, src.name);
    const restarts = parts.reduce((n, c) => n + (c.restarts || 0), 0);
    let dead = typeof d.dead_lettered === 'number' ? d.dead_lettered : 0;
    let gaps = 0;
    const subs = [];
    for (const ch of parts.filter(c => c !== own)) {
      const cd = ch.detail || {};
      const k = cd.counters || {};
      dead += k.dead_lettered || 0;
      const g = cd.gaps || {};
      gaps += g.count || 0;
      const open = g.open_since_ms ? duration((s.service.now_ms - g.open_since_ms) / 1000) : null;
      // A gap backfill (`<source>/backfill`) is an analytics job: its
      // phase, the gaps it still has to cover and how far it is.
      const partProgress = progressOf(cd);
      dead += typeof cd.dead_lettered === 'number' ? cd.dead_lettered : 0;
      subs.push(el('div', { cls: 'sub', 'data-node': 'part:' + ch.name }, [
        el('div', { cls: 'head' }, [el('span', { cls: 'name', text: ch.name.slice(src.name.length + 1) }),
          el('span', { cls: 'kind', text: typeof cd.state === 'string' ? cd.state : '' }), badge(ch.state)]),
        kv([
          ['socket', cd.socket ? (cd.socket.up ? 'up' : 'down') : null, null, cd.socket && !cd.socket.up ? 'warn' : null],
          ['topics', cd.topics ? cd.topics.permitted + ' of ' + cd.topics.total : null, null, cd.topics && cd.topics.rejected ? 'warn' : null],
          ['events', k.events !== undefined ? num(k.events) : null, k.events],
          ['gaps', g.count !== undefined ? num(g.count) + (open ? ' (open ' + open + ')' : '') : null, g.count, g.count ? 'warn' : null, 'gaps'],
          ['phase', typeof cd.phase === 'string' ? cd.phase : null],
          ['gaps to backfill', typeof cd.pending_gaps === 'number' ? num(cd.pending_gaps) : null, cd.pending_gaps, cd.pending_gaps ? 'warn' : null, 'pending_gaps'],
          ['records', typeof cd.records === 'number' && cd.phase ? num(cd.records) : null, cd.records],
          ['retry', cd.retry && cd.retry.attempt ? cd.retry.attempt + ' of ' + cd.retry.limit : null, null, 'warn'],
          ['restarts', ch.restarts ? num(ch.restarts) : null, ch.restarts, 'warn'],
        ]),
        partProgress !== null && cd.window ? bar(partProgress, cd.finished ? null : 'warn') : null,
        partProgress !== null && cd.window ? barLabel('backfill ' + cd.window, percent(partProgress)) : null,
        errorLine(ch),
      ]));
    }
    const progress = progressOf(d);
    const children = [
      el('div', { cls: 'desc', text: src.describe }),
      rateLine(rate('source:' + src.name), 'events/s', 'rate'),
      kv([
        ['events', num(ingest.events), ingest.events, null, 'events'],
        ['duplicates', ingest.duplicates ? num(ingest.duplicates) : null, ingest.duplicates],
        ['phase', d.phase || null],
        ['window', d.window || null],
        ['done until', d.done_until || null],
        ['dead letters', dead ? num(dead) : null, dead, 'bad', 'dead_letters'],
        ['gaps', gaps ? num(gaps) : null, gaps, 'warn', 'gaps'],
        ['restarts', restarts ? num(restarts) : null, restarts, 'warn', 'restarts'],
      ]),
    ];
    if (progress !== null) {
      children.push(bar(progress, d.finished ? null : 'warn'), barLabel(d.finished ? 'finished' : 'backfill', percent(progress)));
    }
    if (!src.feeds.length) children.push(el('div', { cls: 'note', text: 'no listener takes what it publishes' }));
    return card('source:' + src.name, src.name, src.kind, state, children.concat(subs, [errorLine(own)]));
  }

  function routerCard(s) {
    const r = s.router || {};
    const c = (s.components || []).find(x => x.kind === 'router') || { state: 'running' };
    return card('router', 'router', null, c.state, [
      rateLine(rate('router'), 'events/s', 'rate'),
      kv([
        ['published', num(r.published), r.published, null, 'published'],
        ['unrouted', num(r.unrouted || 0), r.unrouted, r.unrouted ? 'warn' : null, 'unrouted'],
        ['pruned listeners', r.pruned ? num(r.pruned) : null, r.pruned, 'warn'],
      ]),
      errorLine(c),
    ]);
  }

  function listenerCard(s, node) {
    const l = (s.listeners || []).find(x => x.name === node.name);
    const q = l ? l.queue : { depth: 0, capacity: node.mailbox, high_water: 0, delivered: 0 };
    const dropped = (q.dropped_queue_full || 0) + (q.dropped_evicted_oldest || 0) + (q.dropped_listener_gone || 0);
    const fill = q.capacity ? q.depth / q.capacity : 0;
    return card('listener:' + node.name, node.name, node.when_full, null, [
      el('div', { cls: 'desc', text: node.topics.join(', ') }),
      rateLine(rate('listener:' + node.name), 'delivered/s', 'rate'),
      bar(fill, fill >= 0.9 ? 'bad' : fill >= 0.5 ? 'warn' : null, q.capacity ? q.high_water / q.capacity : null),
      barLabel('queue ' + num(q.depth) + ' / ' + num(q.capacity), 'high water ' + num(q.high_water)),
      kv([
        ['delivered', num(q.delivered), q.delivered, null, 'delivered'],
        ['depth', num(q.depth), q.depth, null, 'depth'],
        ['dropped', num(dropped), dropped, dropped ? 'bad' : null, 'dropped'],
        ['publisher waiting', q.blocked ? 'yes (backpressure)' : null, null, 'warn'],
        ['fed by', node.fed_by.length ? node.fed_by.join(', ') : 'no source', null, node.fed_by.length ? null : 'warn'],
      ]),
      !l ? el('div', { cls: 'note', text: 'not subscribed to the router' }) : null,
    ]);
  }

  function sinkCard(s, node) {
    const c = (s.components || []).find(x => x.name === node.name && x.kind === 'listener') || { state: 'starting', detail: {} };
    const d = c.detail || {};
    return card('sink:' + node.name, node.name, node.sink, c.state, [
      el('div', { cls: 'desc', text: node.sink_describe }),
      rateLine(rate('sink:' + node.name), 'committed/s', 'rate'),
      kv([
        ['committed', num(d.committed_events || 0), d.committed_events || 0, null, 'committed'],
        ['pending', d.pending !== undefined ? num(d.pending) : null, d.pending],
        ['commit failures', d.commit_failures ? num(d.commit_failures) : null, d.commit_failures, 'warn', 'commit_failures'],
        ['dead letters', num((d.dead_lettered || 0)), d.dead_lettered || 0, d.dead_lettered ? 'bad' : null, 'dead_letters'],
        ['transform refused', d.transform_rejected ? num(d.transform_rejected) : null, d.transform_rejected, 'warn'],
        ['restarts', c.restarts ? num(c.restarts) : null, c.restarts, 'warn', 'restarts'],
      ]),
      errorLine(c),
    ]);
  }

  function otherCard(s, c) {
    const d = c.detail || {};
    const children = [];
    if (c.kind === 'store') {
      const max = d.max_journal_bytes || 0;
      const f = max ? (d.journal_bytes || 0) / max : 0;
      if (max) {
        children.push(bar(f, f >= 0.8 ? 'bad' : f >= 0.5 ? 'warn' : null),
          barLabel('journal ' + bytes(d.journal_bytes || 0) + ' / ' + bytes(max), percent(f)));
      }
      children.push(kv([
        ['journal events', d.journal_events !== undefined ? num(d.journal_events) : null, d.journal_events, null, 'journal_events'],
        ['oldest held', d.journal_oldest_age_s !== undefined ? duration(d.journal_oldest_age_s) : null],
        ['dead letters held', d.dead_letters !== undefined ? num(d.dead_letters) : null, d.dead_letters, d.dead_letters ? 'bad' : null, 'dead_letters'],
        ['restarts', c.restarts ? num(c.restarts) : null, c.restarts, 'warn'],
      ]));
    } else {
      // Whatever else runs (auth, the transform pool, the emulator, an
      // embedder's actors): its first few plain details.
      const plain = Object.entries(d).filter(([, v]) => ['number', 'string', 'boolean'].includes(typeof v)).slice(0, 4);
      children.push(kv(plain.map(([k, v]) => [k.replace(/_/g, ' '), typeof v === 'number' ? num(v) : String(v), typeof v === 'number' ? v : null])
        .concat([['restarts', c.restarts ? num(c.restarts) : null, c.restarts, 'warn']])));
    }
    children.push(errorLine(c));
    return card('component:' + c.name, c.name, c.kind, c.state, children);
  }

  function problems(s) {
    const out = [];
    for (const c of s.components || []) {
      const rank = STATE_RANK[c.state] || 0;
      if (rank >= 3 && !(c.state === 'starting' && !c.gates_readiness)) {
        out.push(c.name + ' is ' + c.state + (c.last_error ? ': ' + c.last_error : '') + (c.restarts ? ' (' + c.restarts + ' restarts)' : ''));
      }
    }
    for (const l of s.listeners || []) {
      const q = l.queue;
      const dropped = q.dropped_queue_full + q.dropped_evicted_oldest + q.dropped_listener_gone;
      if (dropped) out.push(l.name + ' has dropped ' + dropped + ' events (' + l.when_full + ')');
      if (q.capacity && q.depth / q.capacity >= 0.9) out.push(l.name + "'s queue is " + percent(q.depth / q.capacity) + ' full');
    }
    return out;
  }

  function summary(s) {
    const sv = s.service || {};
    const p = sv.process || {};
    const cpu = rate('cpu');
    const parts = ['v' + sv.version, 'up ' + duration(sv.uptime_s)];
    if (p.rss_bytes !== undefined) parts.push('RSS ' + bytes(p.rss_bytes));
    if (p.open_fds !== undefined) parts.push(p.open_fds + (p.max_fds ? ' of ' + p.max_fds : '') + ' files open');
    if (p.threads !== undefined) parts.push(p.threads + ' threads');
    if (cpu !== null) parts.push('CPU ' + Math.round(cpu * 100) + '%');
    return parts.join(' · ');
  }

  function render(s) {
    const ready = s.service && s.service.ready;
    const r = document.getElementById('ready');
    r.className = 'badge state-' + (ready ? 'ready' : 'not_ready');
    r.textContent = ready ? 'ready' : 'not ready';
    document.getElementById('summary').textContent = summary(s);
    const topo = s.topology || { sources: [], listeners: [] };
    const place = (id, cards, empty) => {
      const box = document.getElementById(id);
      box.replaceChildren(...(cards.length ? cards : [el('div', { cls: 'empty', text: empty })]));
    };
    place('sources', topo.sources.map(x => sourceCard(s, x)), 'no source configured');
    place('router', [routerCard(s)], '');
    place('listeners', topo.listeners.map(x => listenerCard(s, x)), 'no listener configured');
    place('sinks', topo.listeners.map(x => sinkCard(s, x)), 'no sink configured');
    // Everything the pipeline columns do not show.
    const listenerNames = new Set(topo.listeners.map(l => l.name));
    const sourceNames = topo.sources.map(x => x.name);
    const others = (s.components || []).filter(c => c.kind !== 'router'
      && !(c.kind === 'listener' && listenerNames.has(c.name))
      && !sourceNames.some(n => c.name === n || c.name.startsWith(n + '/')));
    place('others', others.map(c => otherCard(s, c)), 'nothing else runs');
    const list = problems(s);
    document.getElementById('attention').hidden = list.length === 0;
    document.getElementById('problems').replaceChildren(...list.map(t => el('li', { text: t })));
    drawn = s;
    wire();
  }

  // Lines from each source to the router, the router to each listener, and
  // each listener to its sink; blue and moving while events flow. Only when
  // the columns stand side by side.
  function wire() {
    const svg = document.getElementById('wires');
    const flow = document.getElementById('flow');
    svg.replaceChildren();
    const router = flow.querySelector('[data-node="router"]');
    const first = document.getElementById('col-sources');
    if (!drawn || !router || first.getBoundingClientRect().top !== document.getElementById('col-router').getBoundingClientRect().top) return;
    const box = flow.getBoundingClientRect();
    const ns = svg.namespaceURI;
    const line = (a, b, flowing) => {
      if (!a || !b) return;
      const ra = a.getBoundingClientRect(), rb = b.getBoundingClientRect();
      const x1 = ra.right - box.left, y1 = ra.top + Math.min(ra.height / 2, 28) - box.top;
      const x2 = rb.left - box.left, y2 = rb.top + Math.min(rb.height / 2, 28) - box.top;
      const mid = (x1 + x2) / 2;
      const p = document.createElementNS(ns, 'path');
      p.setAttribute('d', `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`);
      if (flowing) p.setAttribute('class', 'flowing');
      svg.appendChild(p);
    };
    const topo = drawn.topology || { sources: [], listeners: [] };
    const node = n => flow.querySelector('[data-node="' + CSS.escape(n) + '"]');
    for (const src of topo.sources) line(node('source:' + src.name), router, (rate('source:' + src.name) || 0) > 0);
    for (const l of topo.listeners) {
      line(router, node('listener:' + l.name), (rate('listener:' + l.name) || 0) > 0);
      line(node('listener:' + l.name), node('sink:' + l.name), (rate('sink:' + l.name) || 0) > 0);
    }
  }

  function showLive(ok, why) {
    const live = document.getElementById('live');
    live.classList.toggle('stale', !ok);
    live.dataset.failures = String(failures);
    if (ok) {
      live.textContent = 'live · updated ' + new Date().toLocaleTimeString();
    } else {
      const since = lastOk ? ' for ' + duration((Date.now() - lastOk) / 1000) : '';
      live.textContent = 'STALE: /status not answering' + since + ' (' + why + ')';
    }
  }

  async function poll() {
    try {
      const res = await fetch('status', { cache: 'no-store', headers: { accept: 'application/json' } });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const s = await res.json();
      remember(s);
      render(s);
      failures = 0;
      lastOk = Date.now();
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
      showLive(true);
    } catch (e) {
      failures += 1;
      showLive(false, e && e.message ? e.message : String(e));
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  window.addEventListener('resize', wire);
  poll();
})();
