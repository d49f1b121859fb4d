// A passkey registered and used in real headless Chromium, through edge-mfa's /.mfa/ pages.
// Usage: node passkey.mjs http://localhost:PORT [screenshot-dir]
// The CDP virtual authenticator stands in for the platform authenticator (user-verifying).
import { chromium } from "playwright-core";

const base = process.argv[2];
const shots = process.argv[3] || "../docs";
if (!base) { console.error("usage: node passkey.mjs BASE_URL [SCREENSHOT_DIR]"); process.exit(2); }

// A screenshot for the docs (`make screenshots`). Not a check: a page that navigates away while
// Chromium captures it (the quick-login page's autofill request may sign in at once) or a slow
// capture on a loaded machine skips the picture, never the test.
async function shot(page, name) {
  try {
    await page.screenshot({ path: shots + "/" + name, fullPage: true, timeout: 10000 });
  } catch (e) {
    console.log("  [shot] " + name + " skipped: " + String(e.message || e).split("\n")[0]);
  }
}

// Clicks a WebAuthn button, then waits for the page to become the upstream's JSON echo (or for
// the page script to report an error, which fails the test with its words).
async function clickThrough(page, selector) {
  const before = page.url();
  await page.click(selector);
  const outcome = await Promise.race([
    page.waitForFunction(() => document.body && document.body.innerText.trim().startsWith("{"), null, { timeout: 20000 })
      .then(() => "navigated"),
    page.waitForSelector("#webauthn-status:not([hidden])", { timeout: 20000 }).then(() => "error"),
  ]);
  if (outcome === "error") {
    throw new Error("page reported: " + (await page.locator("#webauthn-status").innerText()) + " (at " + before + ")");
  }
}

function check(cond, msg) { if (!cond) { throw new Error("FAILED: " + msg); } console.log("ok - " + msg); }

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"],
});
const timer = setTimeout(() => { console.error("FAILED: timed out"); process.exit(1); }, 90_000);
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => console.log("  [page] " + m.text()));
  // CAPTURE_DIR=...: keep what Chromium's authenticator really sent, as host-test fixtures.
  if (process.env.CAPTURE_DIR) {
    const { writeFileSync } = await import("node:fs");
    let n = 0;
    page.on("request", (r) => {
      const u = r.url();
      if (u.includes("/.mfa/webauthn/") && u.endsWith("/finish") && r.postData()) {
        const kind = u.includes("/register/") ? "registration" : "assertion";
        writeFileSync(`${process.env.CAPTURE_DIR}/chromium-${kind}-${n++}.json`,
          JSON.stringify({ origin: new URL(u).origin, rp_id: "localhost", body: JSON.parse(r.postData()) }, null, 1));
      }
    });
  }
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true,
               isUserVerified: true, automaticPresenceSimulation: true },
  });

  // First factor (demo login), then edge-mfa asks for enrollment: TOTP or a passkey.
  await page.goto(base + "/login?next=/app");
  await page.fill("input[name=username]", "pat");
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit], input[type=submit]")]);
  check(page.url().endsWith("/app"), "login returns to /app");
  await page.waitForSelector("[data-webauthn=register]:not([hidden])");
  check((await page.content()).includes("otpauth://totp/"), "enrollment page offers TOTP too");
  await shot(page, "enroll-page.png");

  await page.fill("#webauthn-name", "Laptop passkey");
  await clickThrough(page, "[data-webauthn=register]");
  let seen = JSON.parse(await page.locator("body").innerText());
  check(seen.headers["x-mfa-user"] === "pat", "after registering, upstream sees x-mfa-user: pat");
  check(seen.headers["x-mfa-method"] === "webauthn", "method is webauthn");
  const creds = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(creds.credentials.length === 1, "the authenticator holds one credential");

  // A new MFA session: drop the edge-mfa cookie, keep the identity; sign in with the passkey.
  const cookies = (await context.cookies()).filter((c) => c.name !== "edge-mfa" && c.name !== "__Host-edge-mfa");
  await context.clearCookies();
  await context.addCookies(cookies);
  await page.goto(base + "/app?again=1");
  await page.waitForSelector("[data-webauthn=login]:not([hidden])");
  await shot(page, "challenge-page.png");
  await clickThrough(page, "[data-webauthn=login]");
  seen = JSON.parse(await page.locator("body").innerText());
  check(seen.headers["x-mfa-user"] === "pat" && seen.headers["x-mfa-method"] === "webauthn", "passkey sign-in reaches the upstream");
  const after = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(after.credentials[0].signCount >= 1, "sign counter advanced");

  // Quick login: no first-factor identity at all; the passkey alone names the user (UV on).
  await context.clearCookies();
  await page.goto(base + "/app?quick=1");
  check(page.url().includes("/.mfa/login"), "without identity, browsers land on the passkey sign-in page");
  // The virtual authenticator may answer the page's autofill request at once and the page then
  // navigates to the app before the button is seen: either is a good next state.
  await page.waitForFunction(
    () => (document.body && document.body.innerText.trim().startsWith("{")) ||
      document.querySelector("[data-webauthn=login]:not([hidden])"),
    null,
    { timeout: 30000 },
  );
  if (page.url().includes("/.mfa/login")) {
    await shot(page, "quick-login.png");
  }
  // The page starts a conditional (autofill) passkey request; the virtual authenticator may
  // answer it at once, else the button does it.
  const autofilled = await page
    .waitForFunction(() => document.body && document.body.innerText.trim().startsWith("{"), null, { timeout: 15000 })
    .then(() => true, () => false);
  if (!autofilled) {
    // The autofill request may still land while the button is pressed; either way we must end
    // on the app's page.
    await clickThrough(page, "[data-webauthn=login]").catch(async (e) => {
      const landed = await page.waitForFunction(() => document.body && document.body.innerText.trim().startsWith("{"), null, { timeout: 15000 })
        .then(() => true, () => false);
      if (!landed) throw e;
    });
  }
  console.log("  quick login via " + (autofilled ? "conditional mediation (autofill)" : "the button"));
  seen = JSON.parse(await page.locator("body").innerText());
  check(seen.headers["x-mfa-user"] === "pat" && seen.headers["x-mfa-method"] === "webauthn", "passkey quick login reaches the upstream as pat");
  check(seen.path === "/app?quick=1", "and returns to the page first asked for");

  // The security home lists the passkey.
  await page.goto(base + "/.mfa/");
  check((await page.content()).includes("Laptop passkey"), "security home lists the passkey");
  await shot(page, "security-home.png");
  console.log("1 passed, 0 failed");
} catch (e) {
  console.error(e && e.stack || String(e));
  process.exitCode = 1;
} finally {
  clearTimeout(timer);
  await browser.close();
}
