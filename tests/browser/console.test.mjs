// A real browser against the admin console: Debian's headless Chromium driven
// by playwright-core.  Started by tests/integration/test_a_browser.py, which
// runs gatehouse and passes where it listens:
//   GH_CONSOLE  http://127.0.0.1:PORT of the console
//   GH_REVERSE  http://127.0.0.1:PORT of the reverse listener (traffic goes there)
//   GH_FORWARD  http://127.0.0.1:PORT of the forward proxy (allowed, blocked and DLP requests)
//   GH_ORIGIN   http://127.0.0.1:PORT of an origin the proxy may reach
//   GH_PROXY_USER  user:password of a proxy user (forward.auth)
//   GH_USER / GH_PASSWORD  an admin login
//   GH_SHOTS    directory for the PNG screenshots
//   GH_CONF     the running config file (the test breaks it once, then restores it)
// Prints one "BROWSER-RESULT {json}" line and exits 0 when every check passed.
import { chromium } from 'playwright-core';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(k + ' is not set'); return v; };
const CONSOLE = env('GH_CONSOLE'), REVERSE = env('GH_REVERSE'), FORWARD = env('GH_FORWARD');
const CONF = env('GH_CONF'), ORIGIN = env('GH_ORIGIN'), PROXY_USER = env('GH_PROXY_USER');
const USER = env('GH_USER'), PASSWORD = env('GH_PASSWORD'), SHOTS = env('GH_SHOTS');
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
const curl = (...args) => new Promise((resolve) => execFile('curl', ['-s', '-o', '/dev/null', '--max-time', '10', ...args],
  { maxBuffer: 1 << 20 }, () => resolve()));

// Poll a predicate in the page.  (Not page.waitForFunction: its polling
// evaluates strings, which the console's CSP rightly forbids.)
async function waitFor(page, fn, timeout = 10000) {
  const end = Date.now() + timeout;
  for (;;) {
    if (await page.evaluate(fn)) return;
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
  // expected: 401 (the wrong password, the check after signing out), 422 (the refused reload)
  page.on('console', (m) => { if (m.type() === 'error' && !/status of (401|422)/.test(m.text())) problems.push(m.text()); });
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
  await page.screenshot({ path: join(SHOTS, 'forward.png'), fullPage: true });
  await page.click('#tabs button[data-tab="reverse"]');
  await waitFor(page, () => document.getElementById('rv-ups').textContent.includes('app'));
  check('reverse upstreams listed', (await page.textContent('#rv-ups')).includes('127.0.0.1:'));
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
  await page.click('#tabs button[data-tab="logs"]');
  await waitFor(page, () => document.getElementById('lg-tail').textContent.includes('GET /?b='));
  await page.fill('#lg-status', '404');
  await curlBurst(3).then(() => execFile('curl', ['-s', '-o', '/dev/null', REVERSE + '/missing-page']));
  await waitFor(page, () => document.getElementById('lg-tail').textContent.includes('/missing-page'));
  check('log tail filtered by status', !(await page.textContent('#lg-tail')).includes('GET /?b='));
  check('audit shows the login', (await page.textContent('#lg-audit')).includes('login'));
  check('audit shows the purge', (await page.textContent('#lg-audit')).includes('cache purge'));
  await page.screenshot({ path: join(SHOTS, 'logs.png'), fullPage: true });

  // 8. config: a broken file is refused with FILE:LINE errors, then a good reload
  await page.click('#tabs button[data-tab="config"]');
  await waitFor(page, () => document.getElementById('cf-json').textContent.includes('generation'));
  const good = readFileSync(CONF, 'utf8');
  writeFileSync(CONF, good.replace('admin: {', 'admin: {\n  bogus_key = 1;'));
  await page.click('#cf-reload-btn');
  await waitFor(page, () => document.getElementById('cf-reload-note').textContent.startsWith('refused'));
  const errs = await page.textContent('#cf-errors');
  check('reload errors shown as FILE:LINE', /gatehouse\.conf:\d+: /.test(errs) && errs.includes('bogus_key'), errs);
  await waitFor(page, () => !document.getElementById('banner').classList.contains('hidden'));
  check('banner says the old config serves', (await page.textContent('#banner')).includes('still serving'));
  await page.screenshot({ path: join(SHOTS, 'config-reload-error.png') });
  writeFileSync(CONF, good);
  await page.click('#cf-reload-btn');
  await waitFor(page, () => document.getElementById('cf-reload-note').textContent === 'reloaded');
  check('reload from the console', true);
  await waitFor(page, () => document.getElementById('cf-path').textContent.includes('generation 2'));
  await page.screenshot({ path: join(SHOTS, 'config.png') });

  // 9. sign out
  await Promise.all([page.waitForURL(CONSOLE + '/login'), page.click('#logout')]);
  const r = await page.evaluate(async () => (await fetch('/api/v1/stats')).status);
  check('signed out', r === 401, r);

  check('no console errors or CSP violations', problems.length === 0, problems);

  // 10. a browser with JavaScript off signs in with the plain form (POST, 303 to /)
  const nojs = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1000, height: 700 } });
  const p2 = await nojs.newPage();
  await p2.goto(CONSOLE + '/');
  check('no-JS: sent to the sign-in page', p2.url().endsWith('/login'), p2.url());
  await p2.fill('#login-user', USER);
  await p2.fill('#login-password', 'not the password');
  await Promise.all([p2.waitForURL(CONSOLE + '/login?e=wrong'), p2.click('#login-submit')]);
  check('no-JS: wrong password message', (await p2.textContent('#login-error')).includes('Wrong'));
  await p2.fill('#login-user', USER);
  await p2.fill('#login-password', PASSWORD);
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
