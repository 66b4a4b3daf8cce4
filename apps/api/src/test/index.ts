export * from "./test-app";
export * from "./test-db";
export * from "./deadlines";
