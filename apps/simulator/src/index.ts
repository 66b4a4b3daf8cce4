export * from "./admin-client";
export * from "./args";
export * from "./device";
export * from "./execute";
export * from "./fleet";
export * from "./http";
export * from "./telemetry";
