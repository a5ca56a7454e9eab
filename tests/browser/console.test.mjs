// A real browser against the admin console: Debian's headless Chromium driven
// by playwright-core.  Started by tests/integration/test_a_browser.py, which
// runs gatehouse and passes where it listens:
//   GH_CONSOLE  http://127.0.0.1:PORT of the console
//   GH_REVERSE  http://127.0.0.1:PORT of the reverse listener (traffic goes there)
//   GH_FORWARD  http://127.0.0.1:PORT of the forward proxy (allowed, blocked and DLP requests)
//   GH_ORIGIN   http://127.0.0.1:PORT of an origin the proxy may reach
//   GH_PROXY_USER  user:password of a proxy user (forward.auth)
//   GH_USER / GH_PASSWORD  an admin login
//   GH_NEW_PASSWORD  the password the test changes it to (through the console)
//   GH_SHOTS    directory for the PNG screenshots
//   GH_CONF     the running config file (the test breaks it once, then restores it)
//   GH_TLS_PAGE an https:// URL of a TLS origin the proxy inspects (forward.inspect mode "all")
// Prints one "BROWSER-RESULT {json}" line and exits 0 when every check passed.
import { chromium } from 'playwright-core';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(k + ' is not set'); return v; };
const CONSOLE = env('GH_CONSOLE'), REVERSE = env('GH_REVERSE'), FORWARD = env('GH_FORWARD');
const CONF = env('GH_CONF'), ORIGIN = env('GH_ORIGIN'), PROXY_USER = env('GH_PROXY_USER');
const USER = env('GH_USER'), PASSWORD = env('GH_PASSWORD'), SHOTS = env('GH_SHOTS');
const NEW_PASSWORD = env('GH_NEW_PASSWORD'), TLS_PAGE = env('GH_TLS_PAGE');
mkdirSync(SHOTS, { recursive: true });

const checks = [];
function check(name, ok, detail) {
  checks.push({ name, ok: !!ok, detail });
  console.log((ok ? 'ok   ' : 'FAIL ') + name + (detail !== undefined ? ' ' + JSON.stringify(detail) : ''));
}

// curl against the reverse listener: n requests over one connection
function curlBurst(n) {
  const urls = Array.from({ length: n }, (_, i) => REVERSE + '/?b=' + i);
  return new Promise((resolve) => execFile('curl', ['-s', '-o', '/dev/null', '--max-time', '10', ...urls],
    { maxBuffer: 1 << 20 }, () => resolve()));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// curl with its exit code and stdout (for the inspected requests)
const curlRun = (...args) => new Promise((resolve) => execFile('curl', ['-sS', '--max-time', '10', ...args],
  { maxBuffer: 1 << 20 }, (err, stdout, stderr) => resolve({ code: err ? (err.code ?? -1) : 0, stdout, stderr })));
const curl = (...args) => new Promise((resolve) => execFile('curl', ['-s', '-o', '/dev/null', '--max-time', '10', ...args],
  { maxBuffer: 1 << 20 }, () => resolve()));

// Poll a predicate in the page.  (Not page.waitForFunction: its polling
// evaluates strings, which the console's CSP rightly forbids.)
// Click a download link and return the download.  The dashboard rebuilds its
// cards on every refresh (2 s), so on a loaded machine the link clicked can be
// replaced under the click and no download starts: try again, a few times.
async function download(page, sel) {
  for (let i = 0; ; i++) {
    try {
      const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 8000 }), page.click(sel)]);
      return dl;
    } catch (e) {
      if (i >= 3) throw e;
    }
  }
}

async function waitFor(page, fn, timeout = 10000, arg = undefined) {
  const end = Date.now() + timeout;
  for (;;) {
    if (await page.evaluate(fn, arg)) return;
    if (Date.now() > end) throw new Error('timed out waiting for ' + fn.toString());
    await sleep(50);
  }
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-dev-shm-usage'],
});
const result = { checks };
try {
  const ctx = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await ctx.newPage();
  const problems = [];
  // expected: 401 (the wrong password, the check after signing out), 422 (the refused reload),
  // 400 and 403 (a short new password, a wrong current password)
  page.on('console', (m) => { if (m.type() === 'error' && !/status of (400|401|403|422)/.test(m.text())) problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));

  // 1. not logged in: the console sends us to the login page
  await page.goto(CONSOLE + '/');
  check('redirected to /login', page.url().endsWith('/login'), page.url());
  result.login_page = await page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    return { load_ms: Math.round(n.loadEventEnd - n.startTime) };
  });
  await page.screenshot({ path: join(SHOTS, 'login.png') });

  // 2. a wrong password is refused with a message
  await page.fill('#login-user', USER);
  await page.fill('#login-password', 'not the password');
  await page.click('#login-submit');
  await waitFor(page, () => document.getElementById('login-error').textContent.length > 0);
  check('wrong password message', (await page.textContent('#login-error')).includes('Wrong'));

  // 3. log in
  await page.fill('#login-password', PASSWORD);
  const t1 = Date.now();
  await Promise.all([page.waitForURL(CONSOLE + '/'), page.click('#login-submit')]);
  await waitFor(page, () => document.getElementById('who').textContent.includes('admin'));
  await waitFor(page, () => document.getElementById('chart-rps').dataset.points !== undefined);
  result.login_to_dashboard_ms = Date.now() - t1;
  const nav = await page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    return { dom_content_loaded_ms: Math.round(n.domContentLoadedEventEnd - n.startTime),
      load_ms: Math.round(n.loadEventEnd - n.startTime), transfer_bytes: n.transferSize };
  });
  result.dashboard_page = nav;
  check('dashboard loaded', (await page.textContent('#who')).includes(USER));
  // (filled by the first /api/v1/stats answer, which may land after #who)
  check('uptime shown', await waitFor(page,
    () => document.getElementById('ov-uptime').textContent.trim() !== '–', 5000)
    .then(() => true, () => false));

  // 4. the charts move under load
  const before = await page.evaluate(() => document.getElementById('chart-rps').dataset.points | 0);
  let maxRev = 0, maxBw = 0;
  for (let round = 0; round < 8; round++) {
    await curlBurst(150);
    await sleep(500);
    const last = await page.evaluate(() => ({
      rps: JSON.parse(document.getElementById('chart-rps').dataset.last || '{}'),
      bw: JSON.parse(document.getElementById('chart-bw').dataset.last || '{}') }));
    maxRev = Math.max(maxRev, last.rps.rev || 0);
    maxBw = Math.max(maxBw, last.bw.rev || 0);
  }
  await sleep(1200);
  const after = await page.evaluate(() => document.getElementById('chart-rps').dataset.points | 0);
  check('req/s chart saw reverse traffic', maxRev > 0, maxRev);
  check('bandwidth chart saw reverse traffic', maxBw > 0, maxBw);
  check('charts gained samples', after > before, { before, after });
  result.max_reverse_rps_seen = maxRev;
  // the active-connections chart draws forward and reverse apart: hold one of each open
  const net = await import('node:net');
  const hold = [FORWARD, REVERSE].map((u) => net.connect(+new URL(u).port, '127.0.0.1'));
  await waitFor(page, () => { const l = JSON.parse(document.getElementById('chart-active').dataset.last || '{}');
    return l.fwd >= 1 && l.rev >= 1; });
  const act = await page.evaluate(() => JSON.parse(document.getElementById('chart-active').dataset.last));
  check('active connections charted per family', act.fwd >= 1 && act.rev >= 1, act);
  check('active connections card split by family', /forward \d+ · reverse \d+/.test(await page.textContent('#ov-active-sub')));
  for (const h of hold) h.destroy();
  const total = await page.textContent('#ov-rev-req');
  check('reverse request total counted', parseInt(total.replace(/,/g, ''), 10) >= 1000, total);
  await page.screenshot({ path: join(SHOTS, 'overview.png'), fullPage: true });

  // 5. API latency, measured from the page (same cookie, same origin)
  result.api_latency_ms = await page.evaluate(async () => {
    const out = {};
    for (const ep of ['stats', 'config', 'tail', 'events', 'forward']) {
      const t = [];
      for (let i = 0; i < 20; i++) {
        const s = performance.now();
        const r = await fetch('/api/v1/' + ep, { credentials: 'same-origin' });
        await r.text();
        t.push(performance.now() - s);
      }
      t.sort((a, b) => a - b);
      out[ep] = { median: +t[10].toFixed(2), max: +t[19].toFixed(2) };
    }
    return out;
  });

  // 6. the policy tester
  await page.click('#tabs button[data-tab="policy"]');
  await page.fill('#pt-url', 'http://www.games.example/play');
  await page.fill('#pt-client', '127.0.0.1');
  await page.click('#pt-submit');
  await page.waitForSelector('#pt-verdict');
  check('policy tester: deny', (await page.textContent('#pt-verdict')).trim() === 'deny');
  check('policy tester: rule', (await page.textContent('#pt-rule')).trim() === 'no-games');
  // ... and whether an allowed https:// site would be inspected or tunnelled (forward.inspect)
  await page.fill('#pt-url', 'https://www.news.example/');
  await page.click('#pt-submit');
  await waitFor(page, () => /inspected/.test((document.getElementById('pt-tls') || {}).textContent || ''));
  await page.fill('#pt-url', 'https://online.bank.example/');
  await page.click('#pt-submit');
  await waitFor(page, () => /tunnelled/.test((document.getElementById('pt-tls') || {}).textContent || ''));
  const ptTls = await page.textContent('#pt-tls');
  check('policy tester: inspected or tunnelled', /tunnelled/.test(ptTls) && /bank\.example/.test(ptTls), ptTls);
  await page.fill('#pt-url', 'http://www.games.example/play');
  await page.click('#pt-submit');
  await waitFor(page, () => !document.getElementById('pt-tls') && document.getElementById('pt-rule') &&
    document.getElementById('pt-rule').textContent.trim() === 'no-games');
  await page.screenshot({ path: join(SHOTS, 'policy-tester.png'), fullPage: true });

  // 7. the other pages render; first traffic through the proxy: blocked, allowed as a
  // signed-in user, and a card number in a POST body (DLP)
  await curl('-x', FORWARD, 'http://www.games.example/a', 'http://www.games.example/b', 'http://dl.example.org/tool.exe');
  await curl('-x', FORWARD, '--proxy-user', PROXY_USER, ORIGIN + '/echo?1', ORIGIN + '/echo?2', ORIGIN + '/echo?3');
  await curl('-x', FORWARD, '--proxy-user', PROXY_USER, '--data-binary', 'card 4111 1111 1111 1111', ORIGIN + '/upload');
  await sleep(400);   // the access log is flushed every 0.2 s
  await page.click('#tabs button[data-tab="forward"]');
  await waitFor(page, () => document.querySelectorAll('#fw-rules tr').length >= 2);
  await waitFor(page, () => document.getElementById('fw-blocks').textContent.includes('games.example'));
  check('forward rules listed', (await page.textContent('#fw-rules')).includes('no-games'));
  check('blocked requests listed', (await page.textContent('#fw-blocks')).includes('no-games'));
  await waitFor(page, () => document.getElementById('fw-dlp').textContent.includes('credit_card'));
  const topA = await page.textContent('#fw-top-allowed'), topB = await page.textContent('#fw-top-blocked');
  check('top allowed domains with counts', /127\.0\.0\.1\s*3/.test(topA), topA);
  check('top blocked domains with counts', /www\.games\.example\s*2/.test(topB) && topB.includes('dl.example.org'), topB);
  const users = await page.textContent('#fw-users');
  check('signed-in user listed', users.includes('alice') && users.includes('127.0.0.1'), users);
  const dlp = await page.textContent('#fw-dlp');
  check('DLP hit listed, redacted', dlp.includes('****-1111') && dlp.includes('alice') && dlp.includes('deny') &&
    !dlp.includes('4111'), dlp);
  const blockRow = await page.textContent('#fw-blocks tr:first-child');
  check('block events in columns (client, user, URL, rule, id)', blockRow.includes('127.0.0.1') && /[0-9a-f]{16}/.test(blockRow), blockRow);
  // the counters as labelled cards, a list's entry count
  check('forward counters as labelled cards', await page.evaluate(() => {
    const c = document.querySelector('#fw-counters .card[data-counter="blocks"]');
    return !!c && /Block pages/.test(c.textContent) && parseInt(c.querySelector('.v').textContent, 10) >= 2 &&
      !/blocks \d+ · /.test(document.getElementById('fw-facts').textContent);
  }), await page.textContent('#fw-counters'));
  const listText = await page.textContent('#fw-lists');
  check('list entry count shown (3 distinct, 1 invalid line)', /ads: 3 entries, 1 invalid line/.test(listText), listText);
  // 250 blocks: the table shows a page of 25, newest first, and pages back
  await new Promise((resolve) => execFile('curl', ['-s', '-o', '/dev/null', '--max-time', '30', '-x', FORWARD,
    ...Array.from({ length: 250 }, (_, i) => 'http://www.games.example/many/' + i)], { maxBuffer: 1 << 20 }, () => resolve()));
  await curl('-x', FORWARD, 'http://ads.example/pixel');
  await waitFor(page, () => document.getElementById('fw-blocks').textContent.includes('ads.example'), 8000);
  const pg = await page.evaluate(() => ({ rows: document.querySelectorAll('#fw-blocks tr').length,
    height: document.getElementById('fw-blocks').getBoundingClientRect().height,
    first: document.querySelector('#fw-blocks tr').textContent, label: document.getElementById('fw-blocks-page').textContent,
    prev: document.getElementById('fw-blocks-prev').disabled }));
  check('block events paged: 25 rows, newest first', pg.rows === 25 && pg.first.includes('ads.example') && pg.prev &&
    /^1–25 of \d+$/.test(pg.label) && parseInt(pg.label.split(' of ')[1], 10) >= 250, pg);
  check('block table height bounded', pg.height < 1600, pg.height);
  await page.click('#fw-blocks-next');
  await waitFor(page, () => document.getElementById('fw-blocks-page').textContent.startsWith('26–50'));
  const older = await page.textContent('#fw-blocks');
  check('next page: older events', !older.includes('ads.example') && older.includes('/many/'), older.slice(0, 200));
  await page.click('#fw-blocks-prev');
  await waitFor(page, () => document.getElementById('fw-blocks-page').textContent.startsWith('1–25'));
  await page.fill('#fw-blocks-q', 'ads.exam');
  await waitFor(page, () => / 1 matching/.test(' ' + document.getElementById('fw-blocks-total').textContent));
  const fq = await page.evaluate(() => [...document.querySelectorAll('#fw-blocks tr')].map((r) => r.textContent));
  check('block filter (host)', fq.length === 1 && fq[0].includes('no-ads'), fq);
  await page.fill('#fw-blocks-q', 'no-ads');
  await waitFor(page, () => / 1 matching/.test(' ' + document.getElementById('fw-blocks-total').textContent));
  check('block filter (rule)', true);
  const apiPage = await page.evaluate(async () => (await fetch('/api/v1/forward/blocks?offset=10&limit=5&q=games')).json());
  check('API pages and filters blocks server-side', apiPage.blocks.length === 5 && apiPage.total >= 250 &&
    apiPage.offset === 10 && apiPage.blocks.every((b) => b.host === 'www.games.example' && b.rule === 'no-games' && b.client === '127.0.0.1'),
    { total: apiPage.total, n: apiPage.blocks.length, first: apiPage.blocks[0] });
  await page.fill('#fw-blocks-q', '');
  await waitFor(page, () => / kept$/.test(document.getElementById('fw-blocks-total').textContent));
  // TLS inspection: the card shows the company CA; its downloads are the certificate
  // curl then trusts for an inspected request; a client that does not trust it aborts
  // the handshake and its host is listed as a bypass candidate
  await waitFor(page, () => !document.getElementById('fw-inspect').classList.contains('hidden') &&
    !!document.getElementById('fw-insp-pem'));
  const fpShown = (await page.textContent('#fw-insp-fp')).trim();
  check('inspection CA fingerprint and expiry shown', /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/.test(fpShown) &&
    /\(\d+ days left\)/.test(await page.textContent('#fw-insp-exp')), fpShown);
  const dl = await download(page, '#fw-insp-pem');
  const pemPath = join(mkdtempSync(join(tmpdir(), 'gh-ca-')), 'gatehouse-ca.crt');
  await dl.saveAs(pemPath);
  const pemText = readFileSync(pemPath, 'utf8');
  const pemCert = new X509Certificate(pemText);
  check('PEM download is the CA certificate, no key', dl.suggestedFilename() === 'gatehouse-ca.crt' &&
    pemCert.ca && pemCert.fingerprint256 === fpShown && !pemText.includes('PRIVATE'),
    { name: dl.suggestedFilename(), fp: pemCert.fingerprint256 });
  const derHref = await page.getAttribute('#fw-insp-der', 'href');
  const derB64 = await page.evaluate(async (href) => {
    const r = await fetch(href);
    const b = new Uint8Array(await r.arrayBuffer());
    return r.status === 200 ? btoa(String.fromCharCode(...b)) : 'status ' + r.status;
  }, derHref);
  let derFp = null;
  try { derFp = new X509Certificate(Buffer.from(derB64, 'base64')).fingerprint256; } catch (e) { derFp = String(e) + derB64.slice(0, 40); }
  check('DER download is the same certificate', derFp === fpShown, derFp);
  const inspGood = await curlRun('-x', FORWARD, '--cacert', pemPath, TLS_PAGE);
  check('curl trusting the downloaded CA gets the inspected page', inspGood.code === 0 && inspGood.stdout.includes('"target": "/echo"'),
    { code: inspGood.code, out: inspGood.stdout.slice(0, 100), err: inspGood.stderr.slice(0, 200) });
  const inspBad = await curlRun('-x', FORWARD, TLS_PAGE);   // the system store: no Gatehouse CA
  check('a client without the CA aborts the handshake', inspBad.code !== 0, inspBad.stderr.slice(0, 200));
  const tlsHost = new URL(TLS_PAGE).hostname;
  let insp = null;
  try {
    await waitFor(page, () => (parseInt(document.getElementById('fw-insp-inspected').textContent.replace(/,/g, ''), 10) || 0) >= 1, 10000);
    await waitFor(page, (h) => document.getElementById('fw-insp-aborts').textContent.includes(h), 10000, tlsHost);
  } catch (e) { /* the checks below say what is missing */ }
  insp = await page.evaluate(() => Object.fromEntries(['inspected', 'tunnelled', 'minted', 'rate', 'cached', 'hits', 'aborts']
    .map((k) => [k, document.getElementById('fw-insp-' + k).textContent])));
  check('inspection card: inspected and tunnelled counts', /^\d+$/.test(insp.inspected) && +insp.inspected >= 1 &&
    /^\d+$/.test(insp.tunnelled), insp);
  check('inspection card: minting and cache', +insp.minted >= 1 && /\d+ µs per certificate/.test(insp.rate) &&
    /^[1-9]\d* \/ 10,000$/.test(insp.cached), insp);
  check('inspection card: hosts whose clients abort the handshake', insp.aborts.includes(tlsHost) &&
    /\d/.test(insp.aborts.replace(tlsHost, '')), insp.aborts);
  await page.screenshot({ path: join(SHOTS, 'forward.png'), fullPage: true });
  await page.click('#tabs button[data-tab="reverse"]');
  await waitFor(page, () => document.getElementById('rv-ups').textContent.includes('app'));
  check('reverse upstreams listed', (await page.textContent('#rv-ups')).includes('127.0.0.1:'));
  const cacheCell = await page.textContent('#rv-sites td[data-cache="/cached/"]');
  const rateCell = await page.textContent('#rv-sites td[data-rate="/cached/"]');
  check('route cache settings shown', /ttl 60 s/.test(cacheCell) && /stale if error 300 s/.test(cacheCell) &&
    (await page.textContent('#rv-sites td[data-cache="/app/"]')).trim() === '–', cacheCell);
  check('route rate limit shown', /5000 req\/s per client, burst 20000/.test(rateCell), rateCell);
  // requests/s per server, live: traffic to the upstream route while the page is open
  let srvRps = 0;
  for (let i = 0; i < 6 && srvRps <= 0; i++) {
    await new Promise((resolve) => execFile('curl', ['-s', '-o', '/dev/null', '-H', 'Host: localhost',
      ...Array.from({ length: 40 }, (_, k) => REVERSE + '/app/echo?' + k)], () => resolve()));
    await sleep(2100);
    srvRps = parseFloat(await page.textContent('#rv-ups td[data-rps]')) || 0;
  }
  check('server requests/s shown live', srvRps > 0, srvRps);
  await page.click('#tabs button[data-tab="overview"]');
  await page.click('#tabs button[data-tab="reverse"]');
  await waitFor(page, () => /localhost\s*app\s*[1-9]/.test(document.getElementById('rv-site-req').textContent));
  check('requests by site and upstream', true, await page.textContent('#rv-site-req'));
  // drain the first server from its button and see it drained
  await waitFor(page, () => !!document.querySelector('#rv-ups button[data-action="drain"]'));
  const server = await page.getAttribute('#rv-ups button[data-action="drain"]', 'data-server');
  await page.click('#rv-ups button[data-action="drain"]');
  await waitFor(page, () => /draining/.test(document.querySelector('#rv-ups').textContent));
  check('server drained from the console', (await page.textContent('#rv-ups')).includes('draining'), server);
  await page.screenshot({ path: join(SHOTS, 'reverse-drained.png'), fullPage: true });
  await page.click('#rv-ups button[data-action="enable"]');
  await waitFor(page, () => !document.querySelector('#rv-ups button[data-action="enable"]'));
  check('server enabled again', !(await page.textContent('#rv-ups')).includes('draining'));
  await page.fill('#rv-purge-target', 'http://localhost/app/old-page');
  await page.click('#rv-purge-btn');
  await waitFor(page, () => document.getElementById('rv-purge-note').textContent.startsWith('purged'));
  check('cache purge from the console', (await page.textContent('#rv-purge-note')) === 'purged 0 object(s)');
  await page.screenshot({ path: join(SHOTS, 'reverse.png'), fullPage: true });
  await page.click('#tabs button[data-tab="certs"]');
  await waitFor(page, () => document.getElementById('ct-list').textContent.length > 0);
  check('certificate listed', (await page.textContent('#ct-list')).includes('www.example.test'));
  const daysLeft = (await page.textContent('#ct-list td.days-warn')).trim();
  check('certificate days left highlighted (amber under 30)', daysLeft === '19' || daysLeft === '20', daysLeft);
  await page.screenshot({ path: join(SHOTS, 'certificates.png') });
  // (the tail keeps the last 256 lines: make fresh ones, an allowed and a denied one)
  await curlBurst(3);
  await curl('-x', FORWARD, 'http://ads.example/pixel');
  await sleep(400);
  await page.click('#tabs button[data-tab="logs"]');
  await waitFor(page, () => document.getElementById('lg-tail').textContent.includes('/?b='));
  await waitFor(page, () => document.getElementById('lg-tail').textContent.includes('ads.example/pixel'));
  // a parsed table: time, client, user, verdict, rule, status, URL; the raw line on a click
  const row = await page.evaluate(() => {
    const tr = [...document.querySelectorAll('#lg-tail tr.line')].find((r) => r.textContent.includes('/?b='));
    return tr ? [...tr.children].map((td) => td.textContent) : null;
  });
  check('log tail parsed into columns', row && row.length === 7 && /^\d\d:\d\d:\d\d$/.test(row[0]) && row[1] === '127.0.0.1' &&
    row[3] === 'route' && row[4] === '/' && row[5] === '200' && /^GET (localhost|127\.0\.0\.1:\d+)\/\?b=\d+$/.test(row[6]), row);
  const den = await page.evaluate(() => {
    const tr = [...document.querySelectorAll('#lg-tail tr.line')].find((r) => r.textContent.includes('ads.example/pixel'));
    return tr ? [...tr.children].map((td) => td.textContent) : null;
  });
  check('log tail: a forward denial with verdict, rule and status', den && den[3] === 'deny' && den[4] === 'no-ads' &&
    den[5] === '403', den);
  const rawHidden = await page.evaluate(() => document.querySelector('#lg-tail tr.raw').classList.contains('hidden'));
  await page.click('#lg-tail tr.line');
  const raw = await page.evaluate(() => { const r = document.querySelector('#lg-tail tr.raw');
    return { shown: !r.classList.contains('hidden'), text: r.textContent }; });
  check('raw line on a click', rawHidden && raw.shown && /HTTP\/1\.1" \d{3} /.test(raw.text), raw);
  check('log tail does not widen the page', await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
  await page.click('#lg-tail tr.line');
  await page.fill('#lg-status', '404');
  await curlBurst(3).then(() => execFile('curl', ['-s', '-o', '/dev/null', REVERSE + '/missing-page']));
  await waitFor(page, () => document.getElementById('lg-tail').textContent.includes('/missing-page'));
  check('log tail filtered by status', !(await page.textContent('#lg-tail')).includes('/?b='));
  check('audit shows the login', (await page.textContent('#lg-audit')).includes('login'));
  check('audit shows the purge', (await page.textContent('#lg-audit')).includes('cache purge'));
  await page.screenshot({ path: join(SHOTS, 'logs.png'), fullPage: true });

  // 8. config: a broken file is refused with FILE:LINE errors, then a good reload
  await page.click('#tabs button[data-tab="config"]');
  await waitFor(page, () => document.getElementById('cf-json').textContent.includes('generation'));
  await waitFor(page, () => document.getElementById('cf-facts').textContent.includes('Shared state'));
  check('HA state shown (a box alone)', (await page.textContent('#cf-facts')).includes('local (no cluster.redis)'));
  const good = readFileSync(CONF, 'utf8');
  // reload asks first: Cancel does nothing
  const genBefore = await page.evaluate(async () => (await (await fetch('/api/v1/reload')).json()));
  await page.click('#cf-reload-btn');
  await waitFor(page, () => document.getElementById('confirm-dlg').open);
  check('reload asks for confirmation', (await page.textContent('#confirm-text')).includes('Reload'));
  await page.screenshot({ path: join(SHOTS, 'config-reload-confirm.png') });
  await page.click('#confirm-cancel');
  await waitFor(page, () => !document.getElementById('confirm-dlg').open);
  await sleep(300);
  const genAfter = await page.evaluate(async () => (await (await fetch('/api/v1/reload')).json()));
  check('cancel does not reload', genAfter.when === genBefore.when && genAfter.generation === genBefore.generation &&
    (await page.textContent('#cf-reload-note')) === 'not reloaded', { genBefore, genAfter });
  writeFileSync(CONF, good.replace('admin: {', 'admin: {\n  bogus_key = 1;'));
  await page.click('#cf-reload-btn');
  await waitFor(page, () => document.getElementById('confirm-dlg').open);
  await page.click('#confirm-ok');
  await waitFor(page, () => document.getElementById('cf-reload-note').textContent.startsWith('refused'));
  const errs = await page.textContent('#cf-errors');
  check('reload errors shown as FILE:LINE', /gatehouse\.conf:\d+: /.test(errs) && errs.includes('bogus_key'), errs);
  await waitFor(page, () => !document.getElementById('banner').classList.contains('hidden'));
  check('banner says the old config serves', (await page.textContent('#banner')).includes('still serving'));
  await page.screenshot({ path: join(SHOTS, 'config-reload-error.png') });
  writeFileSync(CONF, good);
  await page.click('#cf-reload-btn');
  await waitFor(page, () => document.getElementById('confirm-dlg').open);
  await page.click('#confirm-ok');
  await waitFor(page, () => document.getElementById('cf-reload-note').textContent === 'reloaded');
  check('reload from the console', true);
  await waitFor(page, () => document.getElementById('cf-path').textContent.includes('generation 2'));
  await page.screenshot({ path: join(SHOTS, 'config.png') });

  // 9. a phone during an incident: 420 px wide, every tab reachable, no sideways page scroll
  await page.setViewportSize({ width: 420, height: 800 });
  const narrow = [];
  for (const tab of ['overview', 'forward', 'reverse', 'policy', 'config', 'certs', 'logs']) {
    const box = await page.locator('#tabs button[data-tab="' + tab + '"]').boundingBox();
    await page.click('#tabs button[data-tab="' + tab + '"]', { trial: false });
    await sleep(tab === 'forward' || tab === 'reverse' || tab === 'logs' ? 700 : 250);
    const m = await page.evaluate((t) => ({ sw: document.documentElement.scrollWidth,
      shown: !document.getElementById('tab-' + t).classList.contains('hidden') }), tab);
    narrow.push({ tab, x: box && Math.round(box.x), right: box && Math.round(box.x + box.width), sw: m.sw, shown: m.shown });
    if (tab === 'forward' || tab === 'logs') await page.screenshot({ path: join(SHOTS, 'phone-' + tab + '.png'), fullPage: true });
  }
  check('420 px: every tab visible in the bar', narrow.every((n) => n.x !== null && n.x >= 0 && n.right <= 420), narrow);
  check('420 px: every tab opens', narrow.every((n) => n.shown), narrow);
  check('420 px: no horizontal page scroll on any tab', narrow.every((n) => n.sw <= 420), narrow);
  await page.setViewportSize({ width: 1360, height: 900 });

  // 10. change one's own password: another session of the same user ends, this one stays
  const other = await browser.newContext();
  const op = await other.newPage();
  await op.goto(CONSOLE + '/login');
  await op.fill('#login-user', USER);
  await op.fill('#login-password', PASSWORD);
  await Promise.all([op.waitForURL(CONSOLE + '/'), op.click('#login-submit')]);
  check('a second session signed in', await op.evaluate(async () => (await fetch('/api/v1/stats')).status) === 200);
  await page.click('#pw-open');
  await waitFor(page, () => document.getElementById('pw-dlg').open);
  await page.fill('#pw-current', PASSWORD);
  await page.fill('#pw-new', 'short');
  await page.fill('#pw-new2', 'short');
  await page.evaluate(() => { for (const i of document.querySelectorAll('#pw-form input')) i.removeAttribute('minlength'); });
  await page.click('#pw-submit');
  await waitFor(page, () => document.getElementById('pw-error').textContent.length > 0);
  check('a short new password is refused', (await page.textContent('#pw-error')).includes('12'), await page.textContent('#pw-error'));
  await page.fill('#pw-current', 'not the password');
  await page.fill('#pw-new', NEW_PASSWORD);
  await page.fill('#pw-new2', NEW_PASSWORD);
  await page.click('#pw-submit');
  await waitFor(page, () => /wrong/.test(document.getElementById('pw-error').textContent));
  check('a wrong current password is refused', true, await page.textContent('#pw-error'));
  await page.fill('#pw-current', PASSWORD);
  await page.click('#pw-submit');
  await waitFor(page, () => document.getElementById('who').textContent.includes('password changed'));
  check('password changed', !(await page.evaluate(() => document.getElementById('pw-dlg').open)), await page.textContent('#who'));
  check('this session stays signed in', await page.evaluate(async () => (await fetch('/api/v1/stats')).status) === 200);
  // (asked through the context's request API, not the page: the other page's own
  // 2 s refresh may meet its 401 first and navigate to /login mid-evaluate)
  check("the user's other session ended", (await other.request.get(CONSOLE + '/api/v1/stats')).status() === 401);
  await other.close();
  await page.click('#tabs button[data-tab="logs"]');
  await waitFor(page, () => document.getElementById('lg-audit').textContent.includes('password change'));
  check('password change audited', /password change.*ok/s.test(await page.textContent('#lg-audit')));

  // 11. sign out; the old password fails, the new one works
  await Promise.all([page.waitForURL(CONSOLE + '/login'), page.click('#logout')]);
  const r = await page.evaluate(async () => (await fetch('/api/v1/stats')).status);
  check('signed out', r === 401, r);
  await page.fill('#login-user', USER);
  await page.fill('#login-password', PASSWORD);
  await page.click('#login-submit');
  await waitFor(page, () => document.getElementById('login-error').textContent.length > 0);
  check('the old password fails', (await page.textContent('#login-error')).includes('Wrong'));
  await page.fill('#login-password', NEW_PASSWORD);
  await Promise.all([page.waitForURL(CONSOLE + '/'), page.click('#login-submit')]);
  await waitFor(page, () => document.getElementById('who').textContent.includes('(admin)'));
  check('signed in with the new password', true);
  await Promise.all([page.waitForURL(CONSOLE + '/login'), page.click('#logout')]);

  check('no console errors or CSP violations', problems.length === 0, problems);

  // 12. a browser with JavaScript off signs in with the plain form (POST, 303 to /)
  const nojs = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1000, height: 700 } });
  const p2 = await nojs.newPage();
  await p2.goto(CONSOLE + '/');
  check('no-JS: sent to the sign-in page', p2.url().endsWith('/login'), p2.url());
  await p2.fill('#login-user', USER);
  await p2.fill('#login-password', 'not the password');
  await Promise.all([p2.waitForURL(CONSOLE + '/login?e=wrong'), p2.click('#login-submit')]);
  check('no-JS: wrong password message', (await p2.textContent('#login-error')).includes('Wrong'));
  await p2.fill('#login-user', USER);
  await p2.fill('#login-password', NEW_PASSWORD);
  await Promise.all([p2.waitForURL(CONSOLE + '/'), p2.click('#login-submit')]);
  const jar = await nojs.cookies();
  check('no-JS: signed in with a session cookie', jar.some((c) => c.name === 'gh_session' && c.httpOnly && c.sameSite === 'Strict'),
    jar.map((c) => c.name));
  check('no-JS: the dashboard is served', (await p2.content()).includes('tab-overview'));
  await nojs.close();
} catch (e) {
  check('exception', false, String(e && e.stack || e));
} finally {
  await browser.close();
}
const failed = checks.filter((c) => !c.ok).length;
console.log('BROWSER-RESULT ' + JSON.stringify(result));
console.log(`${checks.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
