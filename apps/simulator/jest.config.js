/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  // Every failing test is listed again at the end of the run, however many files ran: CI
  // keeps only the tail of a long log.
  reporters: [["default", { summaryThreshold: 0 }]],
  transform: { "^.+\\.(t|j)sx?$": ["@swc/jest"] },
  testMatch: ["<rootDir>/src/**/*.test.ts"],
  // Every source file counts, loaded by a test or not; the floor is today's level, so
  // coverage cannot fall without someone deciding it may.
  collectCoverage: true,
  coverageProvider: "v8",
  collectCoverageFrom: ["src/**/*.ts", "!src/**/*.test.ts"],
  coverageReporters: ["text-summary"],
  coverageThreshold: { global: { lines: 75, statements: 75, branches: 75, functions: 80 } },
  // Tests run against the contracts' source, so they need no build step.
  moduleNameMapper: { "^@mdm/contracts$": "<rootDir>/../../packages/contracts/src/index.ts" },
};
