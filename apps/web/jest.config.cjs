// Two projects: `unit` (components and hooks, jsdom) and `e2e` (a real API, a production
// build under `next start`, the device simulator and Chromium).
// Both run the contracts', API's and simulator's TypeScript source, so they need no build step.
const workspaceSources = {
  "^@mdm/contracts$": "<rootDir>/../../packages/contracts/src/index.ts",
  "^@mdm/simulator$": "<rootDir>/../simulator/src/index.ts",
};

const swc = [
  "@swc/jest",
  { jsc: { parser: { syntax: "typescript", tsx: true }, transform: { react: { runtime: "automatic" } } } },
];

/** @type {import('jest').Config} */
module.exports = {
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
      testMatch: ["<rootDir>/e2e/**/*.test.ts"],
      moduleNameMapper: workspaceSources,
    },
  ],
};
