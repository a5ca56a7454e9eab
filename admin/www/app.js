/* Gatehouse console: login page and dashboard.  No framework, no inline
 * script (the CSP forbids it), no external resources.  Data comes from the
 * JSON API under /api/v1/; charts are drawn on <canvas> by draw(). */
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);

  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    if (props) for (const k of Object.keys(props)) {
      if (k === 'class') e.className = props[k];
      else if (k === 'text') e.textContent = props[k];
      else e.setAttribute(k, props[k]);
    }
    for (const k of kids) if (k != null) e.append(k instanceof Node ? k : String(k));
    return e;
  }

  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }

  /* ------------------------------------------------------------ login -- */
  if (document.body.id === 'login-page') {
    $('login-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const err = $('login-error');
      err.textContent = '';
      $('login-submit').disabled = true;
      try {
        const r = await fetch('/api/v1/login', {
          method: 'POST', credentials: 'same-origin',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ user: $('login-user').value, password: $('login-password').value }),
        });
        if (r.ok) { location.href = '/'; return; }
        if (r.status === 429) err.textContent = 'Too many failed attempts. Try again in ' + (r.headers.get('Retry-After') || 60) + ' s.';
        else if (r.status === 401) err.textContent = 'Wrong user name or password.';
        else err.textContent = 'Sign-in failed (' + r.status + ').';
      } catch (e) {
        err.textContent = 'Cannot reach the console.';
      }
      $('login-submit').disabled = false;
    });
    return;
  }

  /* -------------------------------------------------------- dashboard -- */
  let session = null;

  /* One way to the sign-in page: a poll that meets 401 while sign-out is
   * under way must not start a second navigation (it aborts the first). */
  let leaving = false;
  function toLogin() {
    if (leaving) return;
    leaving = true;
    location.href = '/login';
  }

  async function api(path, opts) {
    opts = opts || {};
    const headers = { 'Accept': 'application/json' };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    if ((opts.method || 'GET') !== 'GET' && session) headers['X-CSRF-Token'] = session.csrf;
    const r = await fetch('/api/v1/' + path, {
      method: opts.method || 'GET', credentials: 'same-origin', headers,
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    });
    if (r.status === 401) { toLogin(); throw new Error('login required'); }
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    return { status: r.status, ok: r.ok, data };
  }

  const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
  function fmtNum(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
    if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(0) + 'k';
    if (a >= 1e3) return (v / 1e3).toFixed(1) + 'k';
    if (a >= 10 || v === 0) return v.toFixed(0);
    return v.toFixed(1);
  }
  function fmtTime(t) { return t ? new Date(t * 1000).toLocaleString('sv-SE') : 'never'; }
  function fmtDur(s) {
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    return m + 'm ' + (s % 60) + 's';
  }
  function tag(text, cls) { return el('span', { class: 'tag ' + (cls || text), text }); }

  /* ---- charts ---- */
  const COLORS = { fwd: '#1f6feb', rev: '#e8710a', tot: '#5b6472' };
  const samples = [];          /* rows as the API sends them (see columns) */
  let seq = 0;

  function series(name) {
    /* columns: t fwd_rps rev_rps fwd_in rev_in fwd_out rev_out fwd_5xx rev_5xx active fwd_active rev_active */
    switch (name) {
      case 'rps': return [{ c: 'fwd', v: samples.map((s) => s[1]) }, { c: 'rev', v: samples.map((s) => s[2]) }];
      case 'active': return [{ c: 'fwd', v: samples.map((s) => s[10] || 0) }, { c: 'rev', v: samples.map((s) => s[11] || 0) }];
      case 'bw': return [{ c: 'fwd', v: samples.map((s) => s[3] + s[5]) }, { c: 'rev', v: samples.map((s) => s[4] + s[6]) }];
      case 'err': return [
        { c: 'fwd', v: samples.map((s) => s[1] > 0 ? 100 * s[7] / s[1] : 0) },
        { c: 'rev', v: samples.map((s) => s[2] > 0 ? 100 * s[8] / s[2] : 0) }];
    }
    return [];
  }

  function draw(canvas, lines, unit) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 560, h = canvas.clientHeight || 180;
    if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const padL = 44, padR = 8, padT = 8, padB = 18;
    /* 15 minutes once there is that much; until then zoom to the data (>= 2 min) */
    const N = Math.min(900, Math.max(120, lines.length ? lines[0].v.length : 0));
    let max = 0;
    for (const l of lines) for (const v of l.v) if (v > max) max = v;
    max = Math.max(max, unit === '#' ? 4 : 1);
    const nice = Math.pow(10, Math.floor(Math.log10(max)));
    max = Math.ceil(max / nice) * nice;
    g.font = '11px DejaVu Sans, sans-serif';
    g.strokeStyle = '#e6e9ef'; g.fillStyle = '#6b7483'; g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = padT + (h - padT - padB) * i / 4;
      g.beginPath(); g.moveTo(padL, y + 0.5); g.lineTo(w - padR, y + 0.5); g.stroke();
      const tv = max * (4 - i) / 4;
      if (unit === '#') { if (Number.isInteger(tv)) g.fillText(String(tv), 2, y + 4); }
      else g.fillText(fmtNum(tv) + (unit || ''), 2, y + 4);
    }
    g.fillText('-' + (N >= 900 ? 15 : Math.round(N / 6) / 10) + ' min', padL, h - 4);
    g.fillText('now', w - padR - 22, h - 4);
    const x = (i, n) => padL + (w - padL - padR) * (N - n + i) / (N - 1);
    const y = (v) => padT + (h - padT - padB) * (1 - v / max);
    for (const l of lines) {
      const n = l.v.length;
      if (!n) continue;
      g.strokeStyle = COLORS[l.c]; g.lineWidth = 1.6; g.beginPath();
      l.v.forEach((v, i) => { if (i === 0) g.moveTo(x(i, n), y(v)); else g.lineTo(x(i, n), y(v)); });
      g.stroke();
    }
    /* for tests and tooltips: the newest value of each line */
    const last = {};
    for (const l of lines) last[l.c] = l.v.length ? l.v[l.v.length - 1] : 0;
    canvas.dataset.last = JSON.stringify(last);
    canvas.dataset.points = String(lines.length ? lines[0].v.length : 0);
    canvas.title = lines.map((l) => l.c + ': ' + fmtNum(last[l.c]) + (unit === '%' ? '%' : '')).join('  ');
  }

  function drawAll() {
    draw($('chart-rps'), series('rps'));
    draw($('chart-active'), series('active'), '#');
    draw($('chart-bw'), series('bw'));
    draw($('chart-err'), series('err'), '%');
  }

  async function pollStats() {
    const r = await api('stats?since=' + seq);
    if (!r.ok) return;
    const d = r.data;
    for (const row of d.samples) samples.push(row);
    while (samples.length > 900) samples.shift();
    seq = d.seq;
    $('hdr-version').textContent = 'v' + d.version;
    $('ov-uptime').textContent = fmtDur(d.now - d.started_at);
    $('ov-gen').textContent = d.generation;
    $('ov-loaded').textContent = 'loaded ' + fmtTime(d.loaded_at);
    $('ov-active').textContent = fmtInt(d.active_connections);
    const f = d.families.forward, v = d.families.reverse;
    $('ov-active-sub').textContent = 'forward ' + fmtInt(f.active_connections) + ' · reverse ' + fmtInt(v.active_connections);
    $('ov-fwd-req').textContent = fmtInt(f.requests);
    $('ov-fwd-sub').textContent = fmtNum(f.bytes_out) + 'B out · ' + fmtInt(f.responses_4xx) + ' 4xx · ' + fmtInt(f.responses_5xx) + ' 5xx';
    $('ov-rev-req').textContent = fmtInt(v.requests);
    $('ov-rev-sub').textContent = fmtNum(v.bytes_out) + 'B out · ' + fmtInt(v.responses_4xx) + ' 4xx · ' + fmtInt(v.responses_5xx) + ' 5xx' +
      (v.h2_streams ? ' · ' + fmtInt(v.h2_streams) + ' over HTTP/2' : '');
    /* p50/p95 since start, from the /metrics histogram buckets (api stats) */
    const ms = (x) => x == null ? '–' : (x * 1000 < 10 ? (x * 1000).toFixed(1) : Math.round(x * 1000)) + ' ms';
    const lat = (l) => ms(l.p50) + ' / ' + ms(l.p95);
    $('ov-lat').textContent = lat(v.latency);
    $('ov-lat-sub').textContent = 'reverse · forward ' + lat(f.latency);
    const lr = d.last_reload;
    clear($('ov-reload')).append(lr.when ? tag(lr.ok ? 'ok' : 'failed') : el('span', { text: 'none yet' }));
    $('ov-reload-when').textContent = lr.when ? fmtTime(lr.when) : '';
    const b = $('banner');
    if (lr.when && !lr.ok) {
      b.textContent = 'The last configuration reload failed (' + lr.errors.length + ' error(s)); generation ' + lr.generation + ' is still serving. See Config.';
      b.classList.remove('hidden');
    } else b.classList.add('hidden');
    drawAll();
  }

  /* ---- tabs ---- */
  const loaders = {};
  let current = 'overview';
  function show(tab) {
    current = tab;
    for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.tab === tab);
    for (const s of document.querySelectorAll('section.tab')) s.classList.toggle('hidden', s.id !== 'tab-' + tab);
    if (loaders[tab]) loaders[tab]();
    if (tab === 'overview') drawAll();
    if (location.hash !== '#' + tab) history.replaceState(null, '', '#' + tab);
  }

  function matchText(m) {
    const parts = [];
    for (const k of Object.keys(m || {})) parts.push(k + ': ' + m[k].join(', '));
    return parts.length ? parts.join(' · ') : 'anything';
  }

  const none = (tb, cols, text) => { if (!tb.firstChild) tb.append(el('tr', null, el('td', { colspan: cols, class: 'muted', text }))); };

  function renderTop(tb, list, what) {
    clear(tb);
    for (const t of list) tb.append(el('tr', null, el('td', { class: 'mono', text: t.domain }),
      el('td', { text: fmtInt(t.count) + (t.error ? ' ± ' + fmtInt(t.error) : '') })));
    none(tb, 2, 'no ' + what + ' requests yet');
  }

  /* "devs, staff (ldap memberof); filegroup (forward.auth.groups_file)": groups by where they came from */
  function groupsText(u) {
    const by = {};
    (u.groups || []).forEach((g, i) => { const f = (u.groups_from || [])[i] || '?'; (by[f] = by[f] || []).push(g); });
    const t = Object.keys(by).map((f) => by[f].join(', ') + ' (' + f + ')').join('; ');
    return (t || '–') + (u.groups_stale ? ' · cached, expired' : '');
  }

  function renderObserved(o) {
    renderTop($('fw-top-allowed'), o.top_allowed, 'allowed');
    renderTop($('fw-top-blocked'), o.top_blocked, 'blocked');
    const us = clear($('fw-users'));
    for (const u of o.users) us.append(el('tr', null, el('td', { text: u.user }), el('td', { class: 'small', text: groupsText(u) }),
      el('td', { class: 'mono', text: u.clients.join(', ') }),
      el('td', { text: fmtTime(u.last_seen) }), el('td', { text: fmtInt(u.requests) })));
    none(us, 5, 'nobody has signed in to the proxy yet');
    const dl = clear($('fw-dlp'));
    for (const h of o.dlp.hits) dl.append(el('tr', null, el('td', { text: fmtTime(h.time) }), el('td', { class: 'mono', text: h.client }),
      el('td', { text: h.user || '–' }), el('td', { class: 'mono url', text: h.url }), el('td', { text: h.detector + ' (' + h.where + ')' }),
      el('td', { class: 'mono', text: h.match }), el('td', null, tag(h.action, h.action === 'deny' ? 'deny' : 'warn')),
      el('td', { class: 'mono small', text: h.request_id })));
    none(dl, 8, 'no DLP hits yet');
    $('fw-dlp-total').textContent = o.dlp.total + ' since start';
  }

  /* forward.h FWD_COUNTERS, in words and groups; an unknown name shows as it is */
  const COUNTERS = [
    ['Block pages', [['blocks', 'sent']]],
    ['Proxy sign-in', [['auth_ok', 'verified'], ['auth_cached', 'from cache'], ['auth_fail', 'wrong'],
      ['auth_backoff', 'refused (backoff)'], ['auth_required', '407 sent']]],
    ['DLP', [['dlp_scanned', 'bodies scanned'], ['dlp_hits', 'hits'], ['dlp_oversize', 'over max_scan_bytes'],
      ['dlp_busy', 'refused (busy)']]],
    ['PAC', [['pac_served', 'files served']]],
  ];

  function renderCounters(ctr) {
    const box = clear($('fw-counters')), seen = new Set();
    const card = (group, label, name) => {
      seen.add(name);
      box.append(el('div', { class: 'card', 'data-counter': name, title: name },
        el('div', { class: 'k', text: group + ': ' + label }), el('div', { class: 'v', text: fmtInt(ctr[name] || 0) })));
    };
    for (const [group, items] of COUNTERS) for (const [name, label] of items) if (name in ctr) card(group, label, name);
    for (const name of Object.keys(ctr)) if (!seen.has(name)) card('Other', name.replace(/_/g, ' '), name);
  }

  /* forward.inspect (GET config): counters, minting, cache, handshake aborts, the CA */
  let mintSeen = null;     /* { t, minted } of the previous refresh: the minting rate */
  function renderInspect(ins) {
    $('fw-inspect').classList.toggle('hidden', !ins);
    if (!ins) return;
    const c = ins.counters || {};
    $('fw-insp-mode').textContent = 'mode ' + ins.mode + (ins.bypass_domains.length ? ' · bypass ' + ins.bypass_domains.join(', ') : '') +
      (ins.bypass_lists.length ? ' · bypass lists ' + ins.bypass_lists.join(', ') : '');
    $('fw-insp-inspected').textContent = fmtInt(c.inspected || 0);
    $('fw-insp-tunnelled').textContent = fmtInt(c.tunnelled || 0);
    $('fw-insp-refused').textContent = fmtInt(c.hello_refused || 0) + ' hello(s) refused · ' + fmtInt(c.origin_errors || 0) + ' origin error(s)';
    const minted = c.minted || 0, now = Date.now() / 1000;
    let rate = '';
    if (mintSeen && now > mintSeen.t && minted >= mintSeen.minted) rate = ((minted - mintSeen.minted) / (now - mintSeen.t)).toFixed(1) + '/s now · ';
    mintSeen = { t: now, minted };
    $('fw-insp-minted').textContent = fmtInt(minted);
    $('fw-insp-rate').textContent = rate + (minted ? Math.round((c.mint_us_total || 0) / minted) + ' µs per certificate' : 'none minted yet') +
      (c.mint_waits ? ' · ' + fmtInt(c.mint_waits) + ' waited' : '');
    $('fw-insp-cached').textContent = fmtInt(ins.cached || 0) + ' / ' + fmtInt(ins.cert_cache);
    $('fw-insp-hits').textContent = fmtInt(c.cache_hits || 0) + ' cache hit(s)' + (c.insecure_uses ? ' · ' + fmtInt(c.insecure_uses) + ' insecure use(s)' : '');
    const tb = clear($('fw-insp-aborts'));
    for (const a of ins.handshake_aborts || []) tb.append(el('tr', null, el('td', { class: 'mono', text: a.host }), el('td', { text: fmtInt(a.aborts) })));
    none(tb, 2, 'no client has aborted a handshake');
    const dl = clear($('fw-insp-ca')), add = (k, v) => dl.append(el('dt', { text: k }), v instanceof Node ? v : el('dd', { class: 'mono', text: v }));
    if (!ins.ca) { add('Certificate', 'not loaded'); return; }
    const left = Math.floor((ins.ca.not_after - now) / 86400);
    add('SHA-256 fingerprint', el('dd', { class: 'mono small', id: 'fw-insp-fp', text: ins.ca.fingerprint_sha256 }));
    add('Expires', el('dd', { id: 'fw-insp-exp', text: fmtTime(ins.ca.not_after) + ' (' + left + ' days left)' }));
    add('Download', el('dd', null, el('a', { id: 'fw-insp-pem', href: ins.ca.console_pem, download: 'gatehouse-ca.crt', text: 'PEM (gatehouse-ca.crt)' }), ' · ',
      el('a', { id: 'fw-insp-der', href: ins.ca.console_der, download: 'gatehouse-ca.der', text: 'DER (gatehouse-ca.der)' }), ' · ',
      el('span', { class: 'muted small', text: 'clients of the proxy also get it at http://<proxy>' + ins.ca.download }), ' '));
  }

  /* block events: newest first, a page at a time, filtered by the API */
  const BLOCKS_PAGE = 25;
  const blocks = { offset: 0, q: '' };
  async function loadBlocks() {
    const q = new URLSearchParams({ offset: blocks.offset, limit: BLOCKS_PAGE });
    if (blocks.q) q.set('q', blocks.q);
    const r = await api('forward/blocks?' + q.toString());
    if (!r.ok) return;
    const d = r.data, tb = clear($('fw-blocks'));
    if (d.total && blocks.offset >= d.total) { blocks.offset = Math.floor((d.total - 1) / BLOCKS_PAGE) * BLOCKS_PAGE; return loadBlocks(); }
    for (const b of d.blocks) tb.append(el('tr', null, el('td', { text: fmtTime(b.time) }), el('td', { class: 'mono', text: b.client }),
      el('td', { text: b.user || '–' }), el('td', { class: 'mono url', text: b.url }), el('td', { text: b.rule }),
      el('td', { class: 'mono small', text: b.request_id }), el('td', { class: 'small', text: b.reason })));
    none(tb, 7, blocks.q ? 'no block events match' : 'no blocked requests yet');
    const last = Math.min(d.offset + d.blocks.length, d.total);
    $('fw-blocks-page').textContent = d.total ? (d.offset + 1) + '–' + last + ' of ' + d.total : '';
    $('fw-blocks-total').textContent = blocks.q ? d.total + ' matching' : d.total + ' kept';
    $('fw-blocks-prev').disabled = d.offset === 0;
    $('fw-blocks-next').disabled = last >= d.total;
  }

  loaders.forward = async () => {
    const [c, ob] = await Promise.all([api('config'), api('forward')]);
    if (ob.ok) renderObserved(ob.data);
    if (!c.ok) return;
    const fw = c.data.forward, tb = clear($('fw-rules'));
    for (const r of fw.policy) tb.append(el('tr', null, el('td', { text: r.index + 1 }), el('td', { text: r.name }),
      el('td', null, tag(r.action)), el('td', { class: 'mono', text: matchText(r.match) }), el('td', { text: fmtInt(r.hits || 0) }),
      el('td', { class: 'muted small', text: r.source || 'implicit' })));
    if (fw.policy.length) tb.append(el('tr', null, el('td'), el('td', { class: 'muted', text: '(no rule matched)' }), el('td', null, tag('deny')),
      el('td', { class: 'muted', text: 'default' }), el('td', { text: fmtInt(fw.no_match_hits || 0) }), el('td')));
    else tb.append(el('tr', null, el('td', { colspan: 6, class: 'muted', text: 'no forward policy' })));
    const facts = clear($('fw-facts'));
    const add = (k, v) => facts.append(el('dt', { text: k }), el('dd', { class: 'mono', text: v }));
    add('Listeners', fw.listeners.map((l) => l.address).join(', ') || 'none');
    add('Allowed clients', fw.allow_clients.join(', ') || 'nobody');
    add('Denied destinations', fw.deny_destinations.join(', ') || 'none');
    add('CONNECT ports', fw.connect_ports.join(', '));
    const lists = el('dd', { id: 'fw-lists' });
    for (const l of fw.lists) lists.append(el('div', { 'data-list': l.name }, el('strong', { text: l.name }), ': ' +
      fmtInt(l.entries || 0) + ' entr' + (l.entries === 1 ? 'y' : 'ies') +
      (l.invalid_lines ? ', ' + fmtInt(l.invalid_lines) + ' invalid line(s) skipped' : '') + ' · ',
      el('span', { class: 'mono small', text: l.file })));
    if (!fw.lists.length) lists.textContent = 'none';
    facts.append(el('dt', { text: 'Category lists' }), lists);
    add('Anonymize', fw.anonymize ? 'yes' : 'no');
    add('DLP', fw.dlp ? (fw.dlp.enabled ? 'on, action ' + fw.dlp.action + ', detectors ' + fw.dlp.detectors.join(', ') : 'off') : 'not configured');
    const icap = el('dd', { id: 'fw-icap' });   /* forward.icap: health, ISTag, verdicts per service */
    for (const v of fw.icap || []) icap.append(el('div', { 'data-icap': v.name }, el('strong', { text: v.name }),
      ' (' + v.method + ') ', tag(v.health, v.health === 'up' ? 'allow' : v.health === 'failing' ? 'deny' : 'warn'),
      ' ISTag ' + (v.istag || '–') + ' · ' + Object.entries(v.counters).map(([k, n]) => k.replace(/_/g, ' ') + ' ' + fmtInt(n)).join(', ') + ' · ',
      el('span', { class: 'mono small', text: v.uri })));
    if (!(fw.icap || []).length) icap.textContent = 'none';
    facts.append(el('dt', { text: 'ICAP services' }), icap);
    if (fw.counters) renderCounters(fw.counters);
    renderInspect(fw.inspect);
    await loadBlocks();
  };

  /* requests/s per server: the difference of its request counter between two polls */
  const reqSeen = {};
  function serverRate(v) {
    const k = v.upstream + ' ' + v.address, t = performance.now(), p = reqSeen[k];
    reqSeen[k] = { t, n: v.requests };
    return p && t > p.t && v.requests >= p.n ? (v.requests - p.n) * 1000 / (t - p.t) : null;
  }

  /* the live cells of the upstream table, in place (buttons stay where they are) */
  async function refreshServers() {
    const live = await api('upstreams');
    if (!live.ok) return;
    for (const v of live.data.servers) {
      const rate = serverRate(v), cell = document.querySelector('#rv-ups td[data-rps="' + CSS.escape(v.upstream + ' ' + v.address) + '"]');
      if (!cell) continue;
      if (rate !== null) cell.textContent = fmtNum(rate);
      cell.previousSibling.textContent = v.in_flight;
    }
  }

  loaders.reverse = async () => {
    const c = await api('config');
    if (!c.ok) return;
    const rv = c.data.reverse, st = clear($('rv-sites'));
    for (const s of rv.sites) {
      s.routes.forEach((r, i) => {
        const opts = [];
        if (r.strip_prefix) opts.push('strip prefix');
        if (r.set_headers.length) opts.push('sets ' + r.set_headers.map((h) => h.name).join(', '));
        if (i === 0 && s.force_https) opts.push('force https');
        if (i === 0 && s.default) opts.push('default site');
        if (r.max_body_bytes) opts.push('max body ' + fmtNum(r.max_body_bytes) + 'B');
        const k = r.cache, rl = s.rate_limit;
        const cache = !k ? '–' : 'on' + (k.ttl > 0 ? ', ttl ' + k.ttl + ' s' : ', origin ttl') +
          (k.stale_if_error >= 0 ? ', stale if error ' + k.stale_if_error + ' s' : '') +
          (k.ignore_set_cookie ? ', ignores Set-Cookie' : '') + (k.ignore_cookie ? ', ignores Cookie' : '');
        const rate = !rl ? '–' : rl.requests_per_second + ' req/s per client, burst ' + rl.burst + ' (site)';
        st.append(el('tr', null, el('td', { class: 'mono', text: i === 0 ? s.hosts.join(', ') : '' }), el('td', { class: 'mono', text: r.path }),
          el('td', null, tag(r.kind, 'ok'), ' ', el('span', { class: 'mono', text: r.target })),
          el('td', { class: 'small', 'data-cache': r.path, text: cache }), el('td', { class: 'small', 'data-rate': r.path, text: rate }),
          el('td', { class: 'small', text: opts.join(' · ') })));
      });
    }
    if (!rv.sites.length) st.append(el('tr', null, el('td', { colspan: 6, class: 'muted', text: 'no sites configured' })));
    const sr = await api('sites');
    const tbs = clear($('rv-site-req'));
    if (sr.ok) for (const x of sr.data.sites) tbs.append(el('tr', null, el('td', { class: 'mono', text: x.site }),
      el('td', { class: 'mono', text: x.upstream }), ...['2xx', '3xx', '4xx', '5xx'].map((k) => el('td', { text: fmtInt(x.requests[k]) }))));
    none(tbs, 6, 'no reverse side configured');
    const live = await api('upstreams');
    const state = {};
    if (live.ok) for (const v of live.data.servers) state[v.upstream + ' ' + v.address] = v;
    const admin = session && session.role === 'admin';
    const up = clear($('rv-ups'));
    for (const u of rv.upstreams) {
      u.servers.forEach((s, i) => {
        const v = state[u.name + ' ' + s.address], rate = v ? serverRate(v) : null;
        const check = !v ? '' : v.last_check ? (v.last_error || (v.last_status > 0 ? 'HTTP ' + v.last_status : 'connect ok')) +
          ' · ' + v.last_latency_ms.toFixed(1) + ' ms' : (v.checked ? 'pending' : 'no checks');
        const actions = el('td', null);
        if (admin && v) for (const [label, action] of [['Drain', 'drain'], ['Disable', 'disable'], ['Enable', 'enable']]) {
          if ((action === 'enable') === (v.admin === 'up')) continue;
          const b = el('button', { class: 'small-btn', 'data-action': action, 'data-server': s.address, text: label });
          b.addEventListener('click', async () => {
            /* disabling cuts a server off at once: ask first (drain lets requests finish) */
            if (action === 'disable' && !await confirmDialog('Disable ' + s.address + ' of ' + u.name +
              ' now? It gets no new requests until enabled again.', 'Disable')) return;
            b.disabled = true;
            await api('servers/' + action, { method: 'POST', body: { upstream: u.name, address: s.address } });
            await loaders.reverse();
          });
          actions.append(b, ' ');
        }
        up.append(el('tr', null, el('td', { text: i === 0 ? u.name : '' }), el('td', { text: i === 0 ? u.balance : '' }),
          el('td', { class: 'mono', text: s.address }), el('td', { text: s.weight }), el('td', { text: s.backup ? 'backup' : 'primary' }),
          el('td', { 'data-state': s.address }, v ? tag(v.state, v.state === 'up' ? 'ok' : v.state === 'down' ? 'failed' : 'warn') : ''),
          el('td', { text: v ? v.in_flight : '' }),
          el('td', { 'data-rps': u.name + ' ' + s.address, text: rate !== null ? fmtNum(rate) : '–' }),
          el('td', { class: 'small', text: (i === 0 && u.health ? u.health.path + ' every ' + u.health.interval + ' s · ' : '') + check }),
          actions));
      });
    }
    if (!rv.upstreams.length) up.append(el('tr', null, el('td', { colspan: 10, class: 'muted', text: 'no upstreams configured' })));
    const cs = await api('cache');
    const facts = clear($('rv-cache'));
    if (cs.ok) {
      const k = cs.data, add = (a, b) => facts.append(el('dt', { text: a }), el('dd', { class: 'mono', text: b }));
      add('Enabled', k.enabled ? 'yes' : 'no (reverse.cache is not configured)');
      add('Objects', fmtInt(k.objects) + ' · ' + fmtNum(k.bytes) + 'B');
      add('Requests', 'hits ' + fmtInt(k.hits) + ' · misses ' + fmtInt(k.misses) + ' · stale ' + fmtInt(k.stale) + ' · revalidated ' + fmtInt(k.revalidated));
      add('Served', fmtNum(k.served_bytes) + 'B of bodies from the cache');
      add('Refreshes', 'background ' + fmtInt(k.refreshes) + ' · failed ' + fmtInt(k.refresh_failures));
      add('Removed', 'purged ' + fmtInt(k.purged) + ' · evicted ' + fmtInt(k.evictions));
    }
    $('rv-purge-btn').disabled = !admin;
    if (!admin) $('rv-purge-note').textContent = 'purging needs the admin role';
  };

  async function purge(ev) {
    ev.preventDefault();
    const t = $('rv-purge-target').value.trim();
    const body = /^https?:\/\//i.test(t) ? { url: t } : { host_prefix: t };
    const r = await api('cache/purge', { method: 'POST', body });
    $('rv-purge-note').textContent = r.ok ? 'purged ' + r.data.purged + ' object(s)' : (r.data && r.data.error) || 'error ' + r.status;
    if (r.ok) await loaders.reverse();
  }

  function renderReload(lr) {
    const box = clear($('cf-reload'));
    if (!lr.when) { box.append(el('p', { class: 'muted', text: 'No reload since start. Generation ' + lr.generation + ' is serving.' })); return; }
    box.append(el('p', null, tag(lr.ok ? 'ok' : 'failed'), ' ', fmtTime(lr.when), ' · generation ' + lr.generation + ' serving'));
    if (lr.errors.length) {
      const ul = el('ul', { class: 'errors', id: 'cf-errors' });
      for (const e of lr.errors) ul.append(el('li', { text: e }));
      box.append(ul);
    }
  }

  loaders.config = async () => {
    const c = await api('config');
    if (!c.ok) return;
    $('cf-path').textContent = c.data.path + ' · generation ' + c.data.generation;
    renderReload(c.data.last_reload);
    $('cf-json').textContent = JSON.stringify(c.data, null, 2);
    const d = c.data, facts = clear($('cf-facts'));
    const add = (k, v) => facts.append(el('dt', { text: k }), el('dd', { class: 'mono', text: v }));
    const ls = (a) => a.map((l) => l.address + (l.tls ? ' (tls)' : '')).join(', ') || 'none';
    add('Loaded', fmtTime(d.loaded_at) + ' (generation ' + d.generation + ')');
    add('Workers', d.global.workers === 0 ? 'one per CPU' : d.global.workers);
    add('Forward listeners', ls(d.forward.listeners));
    add('Forward policy', d.forward.policy.length + ' rule(s), ' + d.forward.lists.length + ' list(s)');
    add('Reverse listeners', ls(d.reverse.listeners));
    add('Reverse', d.reverse.sites.length + ' site(s), ' + d.reverse.upstreams.length + ' upstream(s), ' + d.reverse.certificates.length + ' certificate(s)');
    add('Console', (d.admin.listen || 'off') + (d.admin.https ? ' (https)' : '') + (d.admin.metrics_listen ? ' · metrics on ' + d.admin.metrics_listen : ''));
    add('Logs', 'error: ' + d.global.log.error + ' (' + d.global.log.level + ') · access: ' + (d.global.log.access || 'off') + ' (' + d.global.log.access_format + ')');
    /* the HA pair: shared state in Redis and the peers' config sync */
    const cl = await api('cluster');
    if (cl.ok) {
      const r = cl.data.redis, sy = cl.data.sync;
      const line = (k, ...kids) => facts.append(el('dt', { text: k }), el('dd', { class: 'mono' }, ...kids));
      if (!r.configured) line('Shared state', 'local (no cluster.redis)');
      else if (r.up) line('Shared state', tag('connected', 'ok'), ' Redis ' + r.address + ' since ' + fmtTime(r.since));
      else line('Shared state', tag('fallback', 'failed'), ' Redis ' + r.address + ' unreachable' +
        (r.since ? ' since ' + fmtTime(r.since) : '') + ': limits count per node (' + (r.last_error || '?') + ')' +
        (r.queued ? ', ' + r.queued + ' change(s) waiting' : ''));
      for (const p of sy.peers) {
        const refused = p.tls === 'refused';   // cluster.peer_ca: its certificate did not verify
        line('Peer ' + p.address, tag(refused ? 'certificate refused' : !p.reachable ? 'unreachable' :
          p.healthy ? 'healthy' : 'unhealthy', p.reachable && p.healthy ? 'ok' : 'failed'),
          p.diverged ? tag('diverged', 'warn') : '', p.tls === 'verified' ? tag('TLS verified', 'ok') : '',
          (p.state_error && (p.reachable || refused) ? ' ' + p.state_error + ' ·' : '') +
          ' generation ' + p.generation + ' · last sync ' + fmtTime(p.last_sync) + ': ' + p.last_result);
      }
      if (sy.received && sy.received.when) line('Last offer received', fmtTime(sy.received.when) + ': ' + sy.received.result);
    }
    const btn = $('cf-reload-btn');
    btn.disabled = session.role !== 'admin';
    $('cf-reload-note').textContent = session.role !== 'admin' ? 'reloading needs the admin role' : '';
  };

  loaders.certs = async () => {
    const c = await api('certificates');
    if (!c.ok) return;
    const tb = clear($('ct-list'));
    for (const x of c.data.certificates) {
      if (x.error) { tb.append(el('tr', null, el('td', { class: 'mono', text: x.file }), el('td', { colspan: 5, class: 'error', text: x.error }))); continue; }
      const d = x.days_left, cls = d < 0 ? 'days-bad' : d < 14 ? 'days-bad' : d < 30 ? 'days-warn' : 'days-ok';
      tb.append(el('tr', null, el('td', { class: 'mono', text: x.file }), el('td', { text: x.subject_cn }),
        el('td', { class: 'mono', text: x.names.join(', ') }), el('td', { text: x.issuer_cn }),
        el('td', { text: x.not_after ? fmtTime(x.not_after) : '?' }), el('td', { class: cls, text: d < 0 ? 'expired' : d })));
    }
    if (!tb.firstChild) tb.append(el('tr', null, el('td', { colspan: 6, class: 'muted', text: 'no certificates configured' })));
    const ab = clear($('ct-acme')), admin = session.role === 'admin';
    for (const o of c.data.acme || []) {
      const btn = el('button', { type: 'button', text: 'renew now' });
      btn.disabled = !admin || o.state === 'ordering';
      btn.addEventListener('click', () => renewNow(o.names.split(', ')[0]));
      ab.append(el('tr', null, el('td', { class: 'mono', text: o.names }), el('td', null, tag(o.state)),
        el('td', { text: o.not_after ? fmtTime(o.not_after) : 'no certificate yet' }),
        el('td', { text: o.next ? fmtTime(o.next) : '' }),
        el('td', { class: o.last_error ? 'error' : 'muted', text: o.last_error || 'none' }), el('td', null, btn)));
    }
    if (!ab.firstChild) ab.append(el('tr', null, el('td', { colspan: 6, class: 'muted', text: 'no ACME certificates configured' })));
    if (!admin) $('ct-acme-note').textContent = 'renewing needs the admin role';
  };

  async function renewNow(name) {
    const r = await api('certificates/renew', { method: 'POST', body: { name } });
    $('ct-acme-note').textContent = r.ok ? 'ordering a certificate for ' + name : (r.data && r.data.error) || 'error ' + r.status;
    await loaders.certs();
  }

  /* the live tail: the API parses each line (combined or json); a row opens its raw line */
  let tailSeq = 0;
  const tailLines = [];
  const TAIL_MAX = 500;
  function tailRow(l) {
    const url = l.target && l.target.startsWith('/') && l.host ? l.host + l.target : (l.target || '');
    const tr = el('tr', { class: 'line' }, el('td', { text: l.time ? new Date(l.time * 1000).toLocaleTimeString('sv-SE') : '' }),
      el('td', { class: 'mono', text: l.client }), el('td', { text: l.user || '–' }),
      el('td', null, l.verdict ? tag(l.verdict, l.verdict === 'deny' ? 'deny' : l.verdict === 'auth' ? 'auth' : 'allow') : '–'),
      el('td', { text: l.rule || '–', title: l.reason || '' }),
      el('td', { class: l.status >= 500 ? 'days-bad' : l.status >= 400 ? 'days-warn' : '', text: l.status || '' }),
      el('td', { class: 'mono url', text: (l.method ? l.method + ' ' : '') + url }));
    const raw = el('tr', { class: 'raw' + ($('lg-raw').checked ? '' : ' hidden') }, el('td', { colspan: 7, class: 'mono', text: l.line }));
    tr.addEventListener('click', () => raw.classList.toggle('hidden'));
    return [tr, raw];
  }
  async function pollTail(reset) {
    if ($('lg-pause').checked && !reset) return;
    const q = new URLSearchParams();
    for (const k of ['host', 'status', 'client']) { const v = $('lg-' + k).value.trim(); if (v) q.set(k, v); }
    q.set('after', reset ? 0 : tailSeq);
    const r = await api('tail?' + q.toString());
    if (!r.ok) return;
    const tb = $('lg-tail'), box = $('lg-scroll');
    const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    if (reset) { tailLines.length = 0; clear(tb); }
    tailSeq = r.data.seq;
    if (tb.firstChild && tb.firstChild.classList.contains('empty')) clear(tb);
    for (const l of r.data.lines) { tailLines.push(l); tb.append(...tailRow(l)); }
    while (tailLines.length > TAIL_MAX) { tailLines.shift(); tb.firstChild.remove(); tb.firstChild.remove(); }
    if (!tb.firstChild) tb.append(el('tr', { class: 'empty' }, el('td', { colspan: 7, class: 'muted', text: '(no matching lines yet)' })));
    if (atEnd || reset) box.scrollTop = box.scrollHeight;
  }

  loaders.logs = async () => {
    await pollTail(true);
    const a = await api('audit');
    if (!a.ok) return;
    const tb = clear($('lg-audit'));
    for (const e of a.data.audit) tb.append(el('tr', null, el('td', { text: fmtTime(e.time) }), el('td', { text: e.user }),
      el('td', { class: 'mono', text: e.client }), el('td', { text: e.action }), el('td', null, tag(e.outcome)), el('td', { class: 'small', text: e.detail })));
    if (!tb.firstChild) tb.append(el('tr', null, el('td', { colspan: 6, class: 'muted', text: 'no admin actions yet' })));
  };

  async function policyTest(ev) {
    ev.preventDefault();
    const body = { url: $('pt-url').value.trim(), client: $('pt-client').value.trim(), user: $('pt-user').value.trim(),
      method: $('pt-method').value, groups: $('pt-groups').value.split(',').map((s) => s.trim()).filter(Boolean) };
    if ($('pt-time').value) body.time = $('pt-time').value;
    const r = await api('policy/test', { method: 'POST', body });
    const box = clear($('pt-result'));
    box.classList.remove('hidden', 'allow', 'deny', 'auth');
    if (!r.ok) { box.append(el('p', { class: 'error', text: (r.data && r.data.error) || ('error ' + r.status) })); return; }
    const d = r.data;
    box.classList.add(d.verdict);
    box.append(el('div', { class: 'verdict', id: 'pt-verdict', text: d.verdict }),
      el('p', null, 'Decided by ', el('strong', { id: 'pt-rule', text: d.rule }), ' (' + d.stage + '), HTTP ' + d.status),
      el('p', { class: 'mono', text: d.why }),
      el('p', { class: 'muted small', text: d.input.method + ' ' + d.input.host + ':' + d.input.port + ' from ' + d.input.client +
        (d.input.user ? ' as ' + d.input.user : '') + ' at ' + d.input.time + ' · generation ' + d.generation }));
    if (d.tls) box.append(el('p', { id: 'pt-tls' }, 'HTTPS (TLS inspection): ', el('strong', { text: d.tls.action }), ' · ' + d.tls.reason));
    if (d.icap) box.append(el('p', { id: 'pt-icap', text: 'Content scanners (ICAP): ' + (d.icap.length ? d.icap.join(', ') : 'none') }));
    if (d.input.groups && d.input.groups.length)
      box.append(el('p', { class: 'muted small', text: 'Groups: ' + d.input.groups.join(', ') + ' (from ' + d.input.groups_from + ')' }));
    for (const n of d.notes || []) box.append(el('p', { class: 'muted small', text: 'Not known here: ' + n }));
  }

  /* a question in the page: resolves true on OK, false on Cancel or Escape */
  function confirmDialog(text, okLabel) {
    const d = $('confirm-dlg');
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = okLabel;
    return new Promise((resolve) => {
      const done = (v) => { d.removeEventListener('close', onClose); if (d.open) d.close(); resolve(v); };
      const onClose = () => done(false);
      $('confirm-ok').onclick = () => done(true);
      $('confirm-cancel').onclick = () => done(false);
      d.addEventListener('close', onClose);
      d.showModal();
    });
  }

  async function reloadNow() {
    if (!await confirmDialog('Reload the configuration from ' + ($('cf-path').textContent.split(' · ')[0] || 'its file') +
      ' now? A configuration that does not load is refused and the running one keeps serving.', 'Reload')) {
      $('cf-reload-note').textContent = 'not reloaded';
      return;
    }
    const btn = $('cf-reload-btn');
    btn.disabled = true;
    $('cf-reload-note').textContent = 'reloading…';
    const r = await api('reload', { method: 'POST', body: {} });
    $('cf-reload-note').textContent = r.ok ? 'reloaded' : (r.status === 422 ? 'refused: the old configuration keeps serving' : (r.data && r.data.error) || 'error ' + r.status);
    if (r.data && r.data.when !== undefined) renderReload(r.data);
    btn.disabled = false;
    if (r.ok) setTimeout(loaders.config, 300);
  }

  function openPassword() {
    $('pw-form').reset();
    $('pw-user').value = session.user;
    $('pw-error').textContent = '';
    $('pw-dlg').showModal();
  }

  async function changePassword(ev) {
    ev.preventDefault();
    const err = $('pw-error'), cur = $('pw-current').value, nw = $('pw-new').value;
    if (nw !== $('pw-new2').value) { err.textContent = 'The new passwords differ.'; return; }
    $('pw-submit').disabled = true;
    const r = await api('account/password', { method: 'POST', body: { current: cur, new: nw } });
    $('pw-submit').disabled = false;
    if (!r.ok) {
      err.textContent = r.status === 429 ? 'Too many failed attempts. Try again later.' : (r.data && r.data.error) || 'error ' + r.status;
      return;
    }
    $('pw-dlg').close();
    $('who').textContent = session.user + ' (' + session.role + ') · password changed' +
      (r.data.ended_sessions ? ', ' + r.data.ended_sessions + ' other session(s) signed out' : '');
  }

  async function start() {
    const s = await api('session');
    if (!s.ok) return;
    session = s.data;
    $('who').textContent = session.user + ' (' + session.role + ')';
    for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => show(b.dataset.tab));
    $('logout').addEventListener('click', async () => {
      try { await api('logout', { method: 'POST', body: {} }); } finally { toLogin(); }
    });
    $('pt-form').addEventListener('submit', policyTest);
    $('rv-purge').addEventListener('submit', purge);
    $('cf-reload-btn').addEventListener('click', reloadNow);
    $('pw-open').addEventListener('click', openPassword);
    $('pw-cancel').addEventListener('click', () => $('pw-dlg').close());
    $('pw-form').addEventListener('submit', changePassword);
    $('lg-raw').addEventListener('change', () => { for (const r of document.querySelectorAll('#lg-tail tr.raw')) r.classList.toggle('hidden', !$('lg-raw').checked); });
    let bq = null;
    $('fw-blocks-q').addEventListener('input', () => { clearTimeout(bq); bq = setTimeout(() => { blocks.q = $('fw-blocks-q').value.trim(); blocks.offset = 0; loadBlocks(); }, 200); });
    $('fw-blocks-form').addEventListener('submit', (ev) => ev.preventDefault());
    $('fw-blocks-prev').addEventListener('click', () => { blocks.offset = Math.max(0, blocks.offset - BLOCKS_PAGE); loadBlocks(); });
    $('fw-blocks-next').addEventListener('click', () => { blocks.offset += BLOCKS_PAGE; loadBlocks(); });
    for (const id of ['lg-host', 'lg-status', 'lg-client']) $(id).addEventListener('input', () => pollTail(true));
    window.addEventListener('resize', drawAll);
    const tab = location.hash.slice(1);
    show(loaders[tab] || tab === 'policy' ? tab : 'overview');
    await pollStats();
    setInterval(() => { pollStats().catch(() => {}); }, 1000);
    setInterval(() => { if (current === 'logs') pollTail(false).catch(() => {}); }, 2000);
    setInterval(() => {
      if (current === 'forward') {
        api('forward').then((r) => { if (r.ok) renderObserved(r.data); }).catch(() => {});
        loadBlocks().catch(() => {});
        api('config').then((r) => { if (r.ok) renderInspect(r.data.forward.inspect); }).catch(() => {});
      }
      if (current === 'reverse') refreshServers().catch(() => {});
    }, 2000);
  }

  start();
})();
