import { contentSecurityPolicy, isMetricsPath } from "./content-security";

describe("contentSecurityPolicy", () => {
  test("allows scripts only from this origin or with the nonce, and no eval in production", () => {
    const policy = contentSecurityPolicy("abc123", { development: false, https: false });
    expect(policy).toContain("script-src 'self' 'nonce-abc123' 'strict-dynamic';");
    expect(policy).not.toContain("unsafe-eval");
    expect(policy).toContain("frame-ancestors 'none'");
    expect(policy).toContain("object-src 'none'");
    expect(policy).not.toContain("upgrade-insecure-requests");
  });

  test("upgrades insecure requests only when served over https", () => {
    expect(contentSecurityPolicy("n", { development: false, https: true })).toContain("upgrade-insecure-requests");
  });
});

describe("isMetricsPath", () => {
  test.each(["/api/metrics", "/api/metrics/", "/API/Metrics", "/api//metrics", "/api/%6detrics", "/api/metrics/x"])("%s is the API's metrics", (path) => {
    expect(isMetricsPath(path)).toBe(true);
  });

  test.each(["/api/health", "/api/metricsx", "/metrics", "/admin/devices"])("%s is not", (path) => {
    expect(isMetricsPath(path)).toBe(false);
  });
});
