// Checks the interactive docs in a real browser: RustKV's /docs page loads in
// headless Chromium with no request leaving loopback, lists every route of
// /openapi.json, and "Try it out" on GET /v1/kv/{key} fetches a stored value
// from the running server.
//
// Usage: node docs.mjs PATH_TO_RUSTKV_BINARY   (check-docs.sh builds and runs it)
// Exits non-zero, naming the failed step, on any failure.

import { spawn } from "node:child_process";
import { chromium } from "playwright-core";

const binary = process.argv[2];
if (!binary) {
  throw new Error("usage: node docs.mjs PATH_TO_RUSTKV_BINARY");
}
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const STEP_TIMEOUT_MS = 15_000;

// Fails the check with a message that names the step.
function check(condition, message) {
  if (!condition) {
    throw new Error(`check failed: ${message}`);
  }
}

// Starts the server on 127.0.0.1 with an OS-chosen port and resolves with its
// base URL, read from the start-up log line "rustkv listening on [addr]".
function startServer() {
  const server = spawn(binary, ["--bind", "127.0.0.1", "--port", "0"], {
    env: { ...process.env, RUST_LOG: "info" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const base = new Promise((resolve, reject) => {
    let log = "";
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 20_000);
    server.stderr.on("data", (chunk) => {
      log += chunk;
      const match = /listening on \[([0-9.]+:\d+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        resolve(`http://${match[1]}`);
      }
    });
    server.on("exit", (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
  });
  return { server, base };
}

async function main() {
  const { server, base: started } = startServer();
  let browser;
  try {
    const base = await started;
    console.log(`server at ${base}`);

    // A value to find through the page, written with the native API.
    const key = "docs/check";
    const value = { user: "ada", visits: 7, tags: ["x", "y"] };
    const put = await fetch(`${base}/v1/kv/${encodeURIComponent(key)}?ttl=3600`, {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(value),
    });
    check(put.status === 201, `PUT answered ${put.status}`);
    const spec = await (await fetch(`${base}/openapi.json`)).json();

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // Flags this sandboxed machine needs: no sandbox as root, and no background
      // traffic to Google's hosts, which the closed network refuses. Playwright
      // runs it headless with a fresh, empty profile of its own.
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    const page = await browser.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    const offsite = [];
    const pageErrors = [];
    page.on("request", (request) => {
      const url = new URL(request.url());
      if (url.protocol !== "data:" && url.hostname !== "127.0.0.1") {
        offsite.push(request.url());
      }
    });
    page.on("pageerror", (error) => pageErrors.push(String(error)));

    // 1. The page loads (through the /docs redirect) and renders the API title.
    const response = await page.goto(`${base}/docs`);
    check(response.ok(), `/docs answered ${response.status()}`);
    await page.locator(".swagger-ui .info .title").filter({ hasText: "RustKV" }).waitFor();
    console.log("ok: /docs loaded and shows the RustKV title");

    // 2. Every operation of the document is shown, with its method and path.
    for (const [path, operations] of Object.entries(spec.paths)) {
      for (const method of Object.keys(operations)) {
        const block = page.locator(`.opblock-${method}`).filter({
          has: page.locator(`.opblock-summary-path[data-path="${path}"]`),
        });
        const count = await block.count();
        check(count === 1, `${method.toUpperCase()} ${path} shown ${count} times`);
      }
    }
    console.log(`ok: all ${countOperations(spec)} operations of /openapi.json are shown`);

    // 3. "Try it out" on GET /v1/kv/{key} answers the stored value.
    const get = page.locator("#operations-native-native_get");
    await get.locator(".opblock-summary").click();
    await get.locator("button.try-out__btn").click();
    await get.locator('tr[data-param-name="key"] input').fill(key);
    await get.locator("button.execute").click();
    const live = get.locator(".live-responses-table");
    const answer = live.locator("tr.response");
    await answer.waitFor();
    const status = (await answer.locator(".response-col_status").innerText()).trim();
    check(status === "200", `try it out answered status ${JSON.stringify(status)}`);
    const body = await answer.locator(".highlight-code pre").innerText();
    check(
      JSON.stringify(JSON.parse(body)) === JSON.stringify(value),
      `try it out showed ${JSON.stringify(body)}, not the stored value`,
    );
    const headers = (await answer.locator(".headerline").allInnerTexts()).map((line) =>
      line.trim().toLowerCase(),
    );
    check(headers.includes('etag: "1"'), `response headers lack the ETag: ${headers}`);
    const expiresIn = headers.map((line) => /^x-expires-in: (\d+)$/.exec(line)).find(Boolean);
    check(
      expiresIn && Number(expiresIn[1]) > 3500 && Number(expiresIn[1]) <= 3600,
      `response headers lack an X-Expires-In near 3600: ${headers}`,
    );
    console.log(`ok: try it out of GET /v1/kv/{key} answered 200 with ${body.replace(/\s+/g, " ")}`);

    // 4. Nothing was fetched beyond loopback, and the page raised no errors.
    check(offsite.length === 0, `requests left loopback: ${offsite.join(", ")}`);
    check(pageErrors.length === 0, `page errors: ${pageErrors.join("; ")}`);
    console.log("ok: no request left 127.0.0.1 and the page raised no errors");
  } finally {
    await browser?.close();
    server.kill("SIGTERM");
  }
}

function countOperations(spec) {
  return Object.values(spec.paths).reduce((sum, ops) => sum + Object.keys(ops).length, 0);
}

main().then(
  () => console.log("docs check passed"),
  (error) => {
    console.error(String(error.stack || error));
    process.exit(1);
  },
);
