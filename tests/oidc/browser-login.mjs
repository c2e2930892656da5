// Drives the browser that `tok login` opened, as a person would, for tests/tests/browser_login.rs.
//
// The browser is Debian's headless Chromium, started by `tok login` itself through $BROWSER
// (a wrapper that adds the test flags, --remote-debugging-port=0 and a fresh --user-data-dir).
// This script attaches to it over the DevTools protocol with playwright-core (no browser of its
// own is ever downloaded), finds the tab showing the authorization URL, signs in on
// oidc-provider's login page, grants or cancels on its consent page, and waits for the page
// tokend's redirect listener answers. It saves a screenshot of that page and prints one JSON
// line on stdout: the page's URL, title, heading, text, and how it renders. Then it closes the
// browser.
//
// usage: node browser-login.mjs PROFILE_DIR SCREENSHOT.png grant|cancel ACCOUNT REDIRECT_ORIGIN

import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const [profile, screenshot, choice, account, redirectOrigin] = process.argv.slice(2);
if (!profile || !screenshot || !['grant', 'cancel'].includes(choice) || !account || !redirectOrigin) {
  console.error('usage: node browser-login.mjs PROFILE_DIR SCREENSHOT.png grant|cancel ACCOUNT REDIRECT_ORIGIN');
  process.exit(2);
}
const STEP = 15_000;

// Chromium writes its DevTools port into the profile once it listens.
async function devtoolsPort() {
  const deadline = Date.now() + STEP;
  while (Date.now() < deadline) {
    try {
      const [port] = (await readFile(`${profile}/DevToolsActivePort`, 'utf8')).split('\n');
      if (port) return port.trim();
    } catch {}
    await sleep(50);
  }
  throw new Error(`the browser wrote no DevToolsActivePort into ${profile} within ${STEP} ms`);
}

const browser = await chromium.connectOverCDP(`http://127.0.0.1:${await devtoolsPort()}`, { timeout: STEP });
try {
  const context = browser.contexts()[0];
  // The tab tok opened: the first one that shows a http(s) page.
  let page;
  const deadline = Date.now() + STEP;
  while (!page && Date.now() < deadline) {
    page = context.pages().find((p) => p.url().startsWith('http'));
    if (!page) await sleep(50);
  }
  if (!page) throw new Error(`no tab shows the authorization URL: ${context.pages().map((p) => p.url())}`);
  page.setDefaultTimeout(STEP);
  // A phone-sized window: the pages must read well there too.
  await page.setViewportSize({ width: 390, height: 760 });

  // oidc-provider's login page: any account, any password.
  await page.locator('input[name=login]').fill(account);
  await page.locator('input[name=password]').fill('any-password');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  // Its consent page.
  await page.getByRole('button', { name: 'Continue' }).waitFor();
  if (choice === 'grant') {
    await page.getByRole('button', { name: 'Continue' }).click();
  } else {
    await page.getByRole('link', { name: '[ Cancel ]' }).click();
  }
  // tokend's redirect page.
  await page.waitForURL((url) => url.origin === redirectOrigin, { waitUntil: 'load' });
  await page.screenshot({ path: screenshot, fullPage: true });
  const shown = await page.evaluate(() => {
    const main = document.querySelector('main');
    const heading = document.querySelector('h1');
    const style = heading ? getComputedStyle(heading) : null;
    return {
      url: location.href,
      title: document.title,
      heading: heading ? heading.innerText : null,
      text: document.body.innerText,
      lang: document.documentElement.lang,
      viewport_meta: !!document.querySelector('meta[name=viewport]'),
      // Nothing sticks out sideways on a phone, and the card is on screen.
      fits_width: document.documentElement.scrollWidth <= window.innerWidth,
      card_visible: !!main && main.getBoundingClientRect().width > 200 && main.getBoundingClientRect().top < window.innerHeight,
      // The card keeps a margin from the screen's edges.
      card_left_px: main ? main.getBoundingClientRect().left : 0,
      heading_px: style ? parseFloat(style.fontSize) : 0,
      heading_color: style ? style.color : null,
    };
  });
  console.log(JSON.stringify(shown));
} finally {
  // Closes the browser itself (not just this connection).
  try {
    const session = await browser.newBrowserCDPSession();
    await session.send('Browser.close');
  } catch {}
  await browser.close().catch(() => {});
}
