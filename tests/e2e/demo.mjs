// Drives the demo page in headless Chromium (playwright-core with Debian's /usr/bin/chromium):
// uploads a photo, waits for the top-5 bars, prints them as JSON and takes a screenshot.
//   node tests/e2e/demo.mjs URL PHOTO SCREENSHOT.png
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, photo, screenshot] = process.argv.slice(2);
const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'food101-chromium-')), {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run'],
  viewport: { width: 1000, height: 700 },
});
try {
  const page = await browser.newPage();
  await page.goto(url);
  await page.setInputFiles('#file', photo);
  await page.waitForSelector('#timing', { timeout: 30000 });
  const bars = await page.$$eval('.bar', els => els.map(e => ({
    label: e.querySelector('.label').textContent,
    prob: e.querySelector('.prob').textContent,
  })));
  const shown = await page.$eval('#drop img', img => img.naturalWidth > 0);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ bars, shown }));
} finally {
  await browser.close();
}
