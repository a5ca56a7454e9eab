// TLS inspection in a real browser: Debian's headless Chromium (playwright-core)
// uses the forward proxy and trusts the minted leaves (their one shared key,
// --ignore-certificate-errors-spki-list: what a company CA in the browser's
// store would give).  Started by tests/integration/test_f_inspect.py:
//   GH_FORWARD  host:port of the forward proxy
//   GH_PROXY_SCHEME  https for the HTTPS proxy listener (default http; Chromium
//               then speaks HTTP/2 to the proxy: CONNECT streams)
//   GH_SPKI     base64 SHA-256 of the leaves' public key
//   GH_PAGE     an https:// URL the policy allows (an origin's /echo)
//   GH_BLOCKED  an https:// URL a URL rule blocks (the block page inside TLS)
// Prints one "BROWSER-RESULT {json}" line and exits 0 when every check passed.
import { chromium } from 'playwright-core';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(k + ' is not set'); return v; };
const checks = [];
function check(name, ok, detail) {
  checks.push({ name, ok: !!ok, detail });
  console.log((ok ? 'ok   ' : 'FAIL ') + name + (detail !== undefined ? ' ' + JSON.stringify(detail) : ''));
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--disable-dev-shm-usage',
         '--proxy-server=' + (process.env.GH_PROXY_SCHEME || 'http') + '://' + env('GH_FORWARD'),
         '--proxy-bypass-list=<-loopback>',
         '--ignore-certificate-errors-spki-list=' + env('GH_SPKI')],
});
try {
  const page = await browser.newPage();
  let r = await page.goto(env('GH_PAGE'));
  const body = await page.textContent('body');
  check('inspected page loads over TLS', r && r.status() === 200, r && r.status());
  check('the origin saw the browser\'s request', body.includes('"target": "/echo"'), body.slice(0, 120));
  r = await page.goto(env('GH_BLOCKED'));
  const text = await page.textContent('body');
  check('block page inside HTTPS', r && r.status() === 403, r && r.status());
  check('block page names the rule', text.includes('no-secret'), text.slice(0, 200));
  check('block page gives the request id', /request id/i.test(text), text.slice(0, 300));
} catch (e) {
  check('no exception', false, String(e));
} finally {
  await browser.close();
}
console.log('BROWSER-RESULT ' + JSON.stringify({ checks }));
process.exit(checks.every((c) => c.ok) ? 0 : 1);
