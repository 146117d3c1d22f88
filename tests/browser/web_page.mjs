// Drives the master's web page in Debian's chromium through the DevTools
// protocol (playwright-core), for tests/tests/web.rs, which starts the
// master and the workers, checks what this script downloaded, and reads
// its stdout:
//   "step: workers"   no worker yet, one image cancelled: start the
//                     workers, then write a line to stdin;
//   "result: {json}"  the downloads, and what the page showed.
// Usage: node web_page.mjs CONFIG.json
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const STEP = 60_000; // the longest any one step may take

const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once("line", resolve));

const browser = await chromium.launch({
  executablePath: config.chromium,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  const problems = [];
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`); });
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}: ${r.failure()?.errorText}`));
  if (process.env.TESSERA_BROWSER_TRACE) {
    page.on("request", (r) => console.error("request", r.method(), r.url()));
    page.on("response", (r) => console.error("response", r.status(), r.url()));
    page.on("download", (d) => console.error("download", d.url()));
  }
  process.on("exit", () => { if (problems.length) console.error("problems on the page:", problems); });

  // The printed link: its token becomes a cookie, and leaves the address bar.
  await page.goto(config.url);
  if (page.url().includes("token=")) throw new Error("the token stayed in the address bar: " + page.url());
  await page.locator("#link.live").waitFor();
  await page.locator("#no-workers").waitFor({ state: "visible" });

  // No worker yet: two images wait in the queue; one is cancelled by its
  // own button, the other by "Cancel all".
  await page.setInputFiles("#files", config.cancel_images);
  const queued = page.locator("#tasks tbody tr[data-state=queued]");
  await page.waitForFunction(
    (n) => document.querySelectorAll("#tasks tbody tr[data-state=queued]").length === n,
    config.cancel_images.length,
  );
  const cancelledTask = Number(await queued.first().getAttribute("data-task"));
  await queued.first().getByRole("button", { name: "Cancel" }).click();
  await page.locator(`#tasks tbody tr[data-task="${cancelledTask}"][data-state=cancelled]`).waitFor();
  await page.locator("#cancel-all").click();
  await page.waitForFunction(
    (n) => document.querySelectorAll("#tasks tbody tr[data-state=cancelled]").length === n,
    config.cancel_images.length,
  );
  const cancelled = await page.locator("#tasks tbody tr[data-state=cancelled]").evaluateAll(
    (rows) => rows.map((r) => Number(r.dataset.task)));
  // The header's counts, pushed by the master, name them too: cancelled,
  // not failed.
  await page.waitForFunction(
    (n) => document.querySelector("#n-cancelled").textContent === String(n) &&
      document.querySelector("#n-cancelled").parentElement.textContent.includes("cancelled") &&
      document.querySelector("#n-failed").textContent === "0",
    config.cancel_images.length,
  );

  console.log("step: workers");
  await nextLine();
  for (const name of config.workers) {
    await page.locator(`#workers tbody tr[data-worker="${name}"]`).waitFor();
  }
  await page.locator("#no-workers").waitFor({ state: "hidden" });

  // The batch: images and one file that is not an image.
  await page.setInputFiles("#files", [...config.images, config.not_image]);
  const done = page.locator("#tasks tbody tr[data-state=done]");
  await page.waitForFunction(
    (n) => document.querySelectorAll("#tasks tbody tr[data-state=done]").length === n,
    config.images.length,
    { timeout: 4 * STEP },
  );
  const skipped = await page.locator("#tasks tbody tr[data-state=skipped]").allTextContents();

  // Every result from its link on the page: the first by clicking it (a
  // real download, with its file name), the rest by fetching the link's
  // address with the page's cookie (chromium holds back a burst of clicked
  // downloads behind its "download multiple files?" prompt).
  const downloads = [];
  for (const row of await done.all()) {
    const name = await row.locator("td.name").textContent();
    const task = Number(await row.getAttribute("data-task"));
    const link = row.getByRole("link", { name: "Download" });
    const path = join(config.out_dir, `${task}.png`);
    let suggested = null;
    if (downloads.length === 0) {
      const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
      await download.saveAs(path);
      suggested = download.suggestedFilename();
    } else {
      const response = await page.request.get(await link.evaluate((a) => a.href));
      if (!response.ok()) throw new Error(`${name}: HTTP ${response.status()}`);
      const disposition = response.headers()["content-disposition"] || "";
      suggested = /filename="([^"]*)"/.exec(disposition)?.[1] ?? null;
      writeFileSync(path, await response.body());
    }
    downloads.push({ name, task, path, suggested });
  }
  const [zipDownload] = await Promise.all([page.waitForEvent("download"), page.locator("#zip").click()]);
  const zip = join(config.out_dir, "all.zip");
  await zipDownload.saveAs(zip);

  // The live parts: the task stream shows the attempts; a history opens.
  await page.waitForFunction(() => document.querySelectorAll("#stream rect.span.done").length > 0);
  const spans = await page.locator("#stream rect.span.done").count();
  const workerRows = await page.locator("#workers tbody tr").allTextContents();
  await done.first().getByRole("button", { name: "History" }).click();
  await page.locator("#history-events li", { hasText: "handed to" }).first().waitFor();
  const history = await page.locator("#history-events").textContent();
  await page.locator("#history-close").click();
  const summary = await page.locator("#batch-summary").textContent();
  await page.waitForFunction(() => document.querySelector("#throughput polyline") !== null);
  await page.screenshot({ path: config.screenshot, fullPage: true });

  console.log("result: " + JSON.stringify({
    cancelled, downloads, zip, skipped, spans, worker_rows: workerRows,
    history, summary, problems,
  }));
} finally {
  await browser.close();
  lines.close();
}
