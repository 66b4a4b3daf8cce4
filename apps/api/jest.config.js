// A run of chosen files (`npx jest src/x.test.ts`, or with -t) covers only part of the code:
// the floor is for the whole suite (`npm test`, no file named).
const wholeSuite = !process.argv.slice(2).some((arg) => !arg.startsWith("-"));

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  // Every failing test is listed again at the end of the run, however many files ran: CI
  // keeps only the tail of a long log.
  reporters: [["default", { summaryThreshold: 0 }]],
  transform: { "^.+\\.(t|j)sx?$": ["@swc/jest"] },
  testMatch: ["<rootDir>/src/**/*.test.ts"],
  // The fault runs have their own command (jest.faults.config.js, `npm run test:faults`).
  testPathIgnorePatterns: ["/node_modules/", "<rootDir>/src/faults/"],
  // Tests run against the contracts' source, so they need no build step.
  moduleNameMapper: {
    "^@mdm/contracts$": "<rootDir>/../../packages/contracts/src/index.ts",
    "^@mdm/simulator$": "<rootDir>/../simulator/src/index.ts",
  },
  testTimeout: 30000,
  // Most of a test's time is spent waiting on PostgreSQL, not computing: on a 2-core machine
  // (where jest's default is one worker) two took 812-883 s against about 1,130 s for one.
  // Two everywhere: each worker has its own database and pools (a child API's holds 20), and
  // more would crowd a default server's 100 connections.
  maxWorkers: 2,
  globalSetup: "<rootDir>/src/test/global-setup.cjs",
  // Every source file counts, loaded by a test or not; the floor is today's level (with a
  // real PostgreSQL: without one, the suites that need it are skipped and so is the floor).
  collectCoverage: true,
  coverageProvider: "v8",
  collectCoverageFrom: ["src/**/*.ts", "!src/**/*.test.ts", "!src/test/**", "!src/generated/**", "!src/faults/**"],
  coverageReporters: ["text-summary"],
  ...(process.env.TEST_DATABASE_URL && wholeSuite ? { coverageThreshold: { global: { lines: 94, statements: 94, branches: 89, functions: 94 } } } : {}),
};
