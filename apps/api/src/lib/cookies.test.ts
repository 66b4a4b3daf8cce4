import { parseCookies } from "./cookies";

const parse = (cookie?: string) => parseCookies({ headers: cookie === undefined ? {} : { cookie } });

describe("parseCookies", () => {
  it("reads name=value pairs separated by semicolons", () => {
    expect({ ...parse("mdm_session=a.b.c; mdm_csrf=xyz;theme=dark") }).toEqual({ mdm_session: "a.b.c", mdm_csrf: "xyz", theme: "dark" });
  });

  it("decodes percent-encoding and strips quotes, keeping undecodable values as sent", () => {
    expect({ ...parse('a=%20b%3D; b="quoted"; c=%E0%A4%A') }).toEqual({ a: " b=", b: "quoted", c: "%E0%A4%A" });
  });

  it("keeps the first of repeated names and ignores pairs without a name or =", () => {
    expect({ ...parse("a=1; a=2; =3; junk; b=") }).toEqual({ a: "1", b: "" });
  });

  it("answers an empty object without a Cookie header, and cannot be polluted", () => {
    expect({ ...parse() }).toEqual({});
    const parsed = parse("__proto__=x; constructor=y");
    // biome-ignore lint/suspicious/noProto: a cookie named __proto__ is the attack under test
    expect(parsed.__proto__).toBe("x");
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});
