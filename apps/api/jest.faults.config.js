// The fault runs (`npm run test:faults`): real PostgreSQL and Redis servers of their own,
// stopped and restarted under a simulated fleet. Apart from `npm test`: minutes, not seconds.
const base = require("./jest.config");

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  // Coverage is the main suite's measure.
  collectCoverage: false,
  coverageThreshold: undefined,
  testMatch: ["<rootDir>/src/faults/**/*.test.ts"],
  testPathIgnorePatterns: [],
  testTimeout: 240_000,
  maxWorkers: 1,
};
