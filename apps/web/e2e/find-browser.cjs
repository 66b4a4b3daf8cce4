// Which Chromium the browser suite drives: CHROME_PATH, else the one Playwright installed
// (if anyone ran `npx playwright install chromium`), else a system Chromium or Chrome.
// CommonJS so that jest.config.cjs can decide before any test loads.
const fs = require("node:fs");

const SYSTEM_BROWSERS = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable"];

function playwrightChromium() {
  try {
    return require("playwright-core").chromium.executablePath();
  } catch {
    return undefined;
  }
}

/** The first existing browser among the candidates, or undefined. */
function findBrowser(env = process.env) {
  const candidates = [env.CHROME_PATH, playwrightChromium(), ...SYSTEM_BROWSERS].filter(Boolean);
  return candidates.find((candidate) => fs.existsSync(candidate));
}

module.exports = { findBrowser, SYSTEM_BROWSERS };
