/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
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
  globalSetup: "<rootDir>/src/test/global-setup.cjs",
};
