// The security home in real headless Chromium: add TOTP by reading the secret from the page
// (no QR scanning), add a second authenticator from the home, rename it, delete it.
// Usage: node security-home.mjs http://localhost:PORT [screenshot-dir]
import { chromium } from "playwright-core";
import { createHmac } from "node:crypto";

const base = process.argv[2];
const shots = process.argv[3] || "../docs";
if (!base) { console.error("usage: node security-home.mjs BASE_URL [SCREENSHOT_DIR]"); process.exit(2); }

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
function check(cond, msg) { if (!cond) throw new Error("FAILED: " + msg); console.log("ok - " + msg); }

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) from a base32 secret, as an authenticator app would.
function totp(secretB32, offsetSteps = 0) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secretB32.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + offsetSteps));
  const h = createHmac("sha1", key).update(counter).digest();
  const o = h[h.length - 1] & 15;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1_000_000).padStart(6, "0");
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const timer = setTimeout(() => { console.error("FAILED: timed out"); process.exit(1); }, 90_000);
try {
  const page = await (await browser.newContext({ viewport: { width: 900, height: 1000 }, locale: "en-US" })).newPage();
  await page.goto(base + "/login?next=/app");
  await page.fill("input[name=username]", "hana");
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit], input[type=submit]")]);
  // Forced enrollment: read the key shown for manual entry, type the code an app would show.
  const secret = (await page.locator("#secret").innerText()).trim();
  check(/^[A-Z2-7]{32}$/.test(secret), "the enrollment page shows a base32 key");
  await page.fill("form[action='/.mfa/totp/enroll'] input[name=code]", totp(secret));
  await Promise.all([page.waitForNavigation(), page.click("form[action='/.mfa/totp/enroll'] button[type=submit]")]);
  check(JSON.parse(await page.locator("body").innerText()).headers["x-mfa-user"] === "hana", "enrolled; the app sees hana");

  await page.goto(base + "/.mfa/");
  check((await page.locator("li.factor").count()) === 1, "the security home lists one method");
  // Add a second authenticator from the home.
  await Promise.all([page.waitForNavigation(), page.click("a[href^='/.mfa/totp/enroll']")]);
  const secret2 = (await page.locator("#secret").innerText()).trim();
  await page.fill("form[action='/.mfa/totp/enroll'] input[name=name]", "Tablet");
  await page.fill("form[action='/.mfa/totp/enroll'] input[name=code]", totp(secret2));
  await Promise.all([page.waitForNavigation(), page.click("form[action='/.mfa/totp/enroll'] button[type=submit]")]);
  check(page.url().includes("/.mfa/"), "back on the security home after adding");
  check((await page.locator("li.factor").count()) === 2, "two methods listed");
  await shot(page, "security-home-two-methods.png");

  // Rename "Tablet" to "Old tablet", then delete it.
  const tablet = page.locator("li.factor", { hasText: "Tablet" });
  await tablet.locator("input[name=name]").fill("Old tablet");
  await Promise.all([page.waitForNavigation(), tablet.locator("form[action='/.mfa/factors/rename'] button").click()]);
  check(page.url().includes("done=renamed"), "renamed");
  check((await page.locator("li.factor strong.name", { hasText: "Old tablet" }).count()) === 1, "the new name is shown");
  const old = page.locator("li.factor", { hasText: "Old tablet" });
  await Promise.all([page.waitForNavigation(), old.locator("form[action='/.mfa/factors/delete'] button").click()]);
  check(page.url().includes("done=deleted"), "deleted");
  check((await page.locator("li.factor").count()) === 1, "one method left");
  await shot(page, "security-home.png");

  // Keyboard: the first form control is reachable with Tab and has a visible label.
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.tagName);
  check(["INPUT", "BUTTON", "A"].includes(focused), "keyboard focus reaches the controls");
  console.log("1 passed, 0 failed");
} catch (e) {
  console.error(e && e.stack || String(e));
  process.exitCode = 1;
} finally {
  clearTimeout(timer);
  await browser.close();
}
