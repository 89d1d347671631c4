// Drives the Swagger UI page in headless Chromium with playwright-core, for
// tests/openapi_ui_in_a_browser.rs: loads the page, lists the operations it rendered,
// clicks "Try it out" and "Execute" on GET /books/{id}, waits for the live response on the
// page, and saves a screenshot. Every request the browser makes is logged; any that does
// not go to 127.0.0.1 is aborted and reported.
//
// node swagger_ui.mjs PAGE_URL SCREENSHOT_PATH EXPECTED_TEXT
// env: NODE_TEST_DIR (the directory playwright-core is installed in), CHROMIUM.
// Prints one JSON object on stdout: {operations, requests, offsite, executed, response}.
import { createRequire } from "node:module";
import { join } from "node:path";

const [pageUrl, screenshot, expected] = process.argv.slice(2);
const require = createRequire(join(process.env.NODE_TEST_DIR, "package.json"));
const { chromium } = require("playwright-core");

const requests = [];
const offsite = [];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let result;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1400 } });
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    requests.push(`${route.request().method()} ${url.href}`);
    if (url.hostname !== "127.0.0.1") {
      offsite.push(url.href);
      return route.abort();
    }
    return route.continue();
  });
  const page = await context.newPage();
  page.setDefaultTimeout(60000);
  await page.goto(pageUrl, { waitUntil: "load" });
  await page.waitForSelector(".opblock-summary-path");
  const operations = await page.$$eval(".opblock", (els) =>
    els.map((e) => {
      const method = e.querySelector(".opblock-summary-method")?.textContent.trim();
      const path = e.querySelector(".opblock-summary-path")?.getAttribute("data-path");
      return `${method} ${path}`;
    }),
  );
  const op = page.locator(".opblock.opblock-get", {
    has: page.locator('.opblock-summary-path[data-path="/books/{id}"]'),
  });
  await op.locator(".opblock-summary").first().click();
  await op.locator(".try-out__btn").click();
  await op.locator('tr[data-param-name="id"] input').fill("7");
  await op.locator(".execute").click();
  await page.waitForFunction(
    ([text]) =>
      [...document.querySelectorAll(".live-responses-table")].some((t) =>
        t.innerText.includes(text),
      ),
    [expected],
  );
  const response = await op.locator(".live-responses-table").first().innerText();
  const executed = await op.locator(".request-url pre").first().innerText().catch(() => "");
  await page.screenshot({ path: screenshot, fullPage: true });
  result = { operations, requests, offsite, executed, response };
} catch (e) {
  result = { error: String(e && e.stack ? e.stack : e), requests, offsite };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
