// Two projects: `unit` (components and hooks, jsdom) and `e2e` (a real API, a production
// build under `next start`, the device simulator and Chromium).
// Both run the contracts', API's and simulator's TypeScript source, so they need no build step.
const workspaceSources = {
  "^@mdm/contracts$": "<rootDir>/../../packages/contracts/src/index.ts",
  "^@mdm/simulator$": "<rootDir>/../simulator/src/index.ts",
};

const swc = ["@swc/jest", { jsc: { parser: { syntax: "typescript", tsx: true }, transform: { react: { runtime: "automatic" } } } }];

const { findBrowser } = require("./e2e/find-browser.cjs");

// Without a browser the e2e project has nothing to run on: CI must have one (it installs
// Debian's Chromium), anywhere else the suite is skipped, loudly.
const browser = findBrowser();
if (!browser && process.env.CI) throw new Error("CI needs a Chromium for the browser suite: set CHROME_PATH or apt-get install -y chromium");
if (!browser && process.argv.some((arg) => arg.includes("e2e"))) {
  console.warn(
    "\n*** SKIPPING the dashboard's browser suite (apps/web/e2e): no Chromium found. Set CHROME_PATH, run `npx playwright install chromium`, or `apt-get install -y chromium`. ***\n",
  );
}

/** @type {import('jest').Config} */
module.exports = {
  // Every failing test is listed again at the end of the run, however many files ran: CI
  // keeps only the tail of a long log.
  reporters: [["default", { summaryThreshold: 0 }]],
  // The e2e project is empty without a browser (see above).
  passWithNoTests: true,
  projects: [
    {
      displayName: "unit",
      // Component tests opt into jsdom with a `@jest-environment jsdom` docblock.
      testEnvironment: "node",
      transform: { "^.+\\.(t|j)sx?$": swc },
      testMatch: ["<rootDir>/{components,lib}/**/*.test.{ts,tsx}"],
      setupFiles: ["<rootDir>/jest.setup.cjs"],
      moduleNameMapper: { ...workspaceSources, "^@/(.*)$": "<rootDir>/$1" },
    },
    {
      displayName: "e2e",
      testEnvironment: "node",
      transform: { "^.+\\.(t|j)sx?$": swc },
      testMatch: browser ? ["<rootDir>/e2e/**/*.test.ts"] : [],
      moduleNameMapper: workspaceSources,
    },
  ],
};
