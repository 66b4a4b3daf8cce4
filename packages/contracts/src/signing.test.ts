import { createHash, createHmac } from "node:crypto";
import fc from "fast-check";
import { CommandType } from "./commands";
import {
  type SignableCommand,
  verifyWebhookSignature,
  webhookSignatureHeader,
  adminSignature,
  canonicalJson,
  hmacSha256Hex,
  openWithCommandKey,
  sealWithCommandKey,
  sha256Hex,
  signAdminRequest,
  signCommand,
  timingSafeEqual,
  verifyCommandSignature,
} from "./signing";

const nodeSha256 = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");
const nodeHmac = (secret: string, data: string | Uint8Array) => createHmac("sha256", secret).update(data).digest("hex");

describe("sha256Hex and hmacSha256Hex", () => {
  it.each([
    ["", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
    ["abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
    ["abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"],
  ])("hashes the NIST vector %j", async (input, expected) => {
    expect(await sha256Hex(input)).toBe(expected);
    expect(await sha256Hex(new TextEncoder().encode(input))).toBe(expected);
  });

  it("matches RFC 4231 test case 2", async () => {
    expect(await hmacSha256Hex("Jefe", "what do ya want for nothing?")).toBe("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  });

  it("matches node:crypto on fixed vectors, including non-ASCII and a key longer than the block", async () => {
    const vectors: Array<[string, string]> = [
      ["key", "The quick brown fox jumps over the lazy dog"],
      ["ключ", "héllo wörld ✓ 🚀"],
      ["k".repeat(200), "message"],
      ["secret", ""],
    ];
    for (const [secret, message] of vectors) {
      expect(await hmacSha256Hex(secret, message)).toBe(nodeHmac(secret, message));
      expect(await sha256Hex(message)).toBe(nodeSha256(message));
    }
  });

  it("matches node:crypto on random strings", async () => {
    // "binary" units include lone surrogates: both sides encode them as U+FFFD.
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: "binary", minLength: 1 }), fc.string({ unit: "binary" }), async (secret, message) => {
        expect(await hmacSha256Hex(secret, message)).toBe(nodeHmac(secret, message));
        expect(await sha256Hex(message)).toBe(nodeSha256(message));
      }),
      { numRuns: 200 },
    );
  });

  it("matches node:crypto on random bytes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1 }), fc.uint8Array({ maxLength: 512 }), async (secret, bytes) => {
        expect(await hmacSha256Hex(secret, bytes)).toBe(nodeHmac(secret, bytes));
        expect(await sha256Hex(bytes)).toBe(nodeSha256(bytes));
      }),
      { numRuns: 200 },
    );
  });
});

describe("adminSignature", () => {
  const secret = "hmac-secret-for-tests";

  it("is the HMAC over timestamp, nonce, METHOD, host (lower case), path and the body's SHA-256", async () => {
    const body = '{"maxUses":3}';
    const expected = nodeHmac(
      secret,
      ["1700000000", "nonce-1234", "POST", "api.example.com:8443", "/admin/enrollment-tokens?x=1", nodeSha256(body)].join("\n"),
    );
    const signature = await adminSignature(secret, {
      timestamp: "1700000000",
      nonce: "nonce-1234",
      method: "post",
      host: "API.example.com:8443",
      pathWithQuery: "/admin/enrollment-tokens?x=1",
      body,
    });
    expect(signature).toBe(expected);
  });

  it("hashes an empty body as the SHA-256 of no bytes", async () => {
    const expected = nodeHmac(secret, ["1", "abcdefgh", "GET", "localhost", "/admin/devices", nodeSha256("")].join("\n"));
    expect(
      await adminSignature(secret, { timestamp: "1", nonce: "abcdefgh", method: "GET", host: "localhost", pathWithQuery: "/admin/devices", body: "" }),
    ).toBe(expected);
  });

  it("matches the hand-computed HMAC for random inputs, and signAdminRequest sends it", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: 2 ** 40 }),
        fc.stringMatching(/^[A-Za-z0-9_-]{8,32}$/),
        fc.constantFrom("GET", "POST", "PATCH", "DELETE"),
        fc.webPath(),
        fc.uint8Array({ maxLength: 256 }),
        async (timestamp, nonce, method, path, body) => {
          const pathWithQuery = `/admin${path}`;
          const expected = nodeHmac(secret, [String(timestamp), nonce, method, "mdm.example.com", pathWithQuery, nodeSha256(body)].join("\n"));
          expect(
            await adminSignature(secret, { timestamp: String(timestamp), nonce, method: method.toLowerCase(), host: "mdm.example.com", pathWithQuery, body }),
          ).toBe(expected);
          const headers = await signAdminRequest({
            adminKey: "key",
            hmacSecret: secret,
            method,
            host: "mdm.example.com",
            pathWithQuery,
            body,
            timestamp,
            nonce,
          });
          expect(headers).toEqual({ "X-Admin": "key", "X-Timestamp": String(timestamp), "X-Nonce": nonce, "X-Signature": expected });
        },
      ),
      { numRuns: 100 },
    );
  });

  it("signAdminRequest defaults to the current time and a fresh 32-hex-digit nonce", async () => {
    const before = Math.floor(Date.now() / 1000);
    const first = await signAdminRequest({ adminKey: "key", hmacSecret: secret, method: "GET", host: "localhost", pathWithQuery: "/admin/devices" });
    const second = await signAdminRequest({ adminKey: "key", hmacSecret: secret, method: "GET", host: "localhost", pathWithQuery: "/admin/devices" });
    expect(Number(first["X-Timestamp"])).toBeGreaterThanOrEqual(before);
    expect(Number(first["X-Timestamp"])).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
    expect(first["X-Nonce"]).toMatch(/^[a-f0-9]{32}$/);
    expect(first["X-Nonce"]).not.toBe(second["X-Nonce"]);
  });
});

describe("timingSafeEqual", () => {
  it.each([
    ["", "", true],
    ["abc", "abc", true],
    ["héllo ✓", "héllo ✓", true],
    ["abc", "abd", false],
    ["abc", "ABC", false],
    ["abc", "abcd", false],
    ["abcd", "abc", false],
    ["", "a", false],
    ["a", "", false],
    // Same length in UTF-16, different bytes.
    ["é", "e", false],
  ])("(%j, %j) is %s", (a, b, expected) => {
    expect(timingSafeEqual(a, b)).toBe(expected);
  });

  it("agrees with === on random well-formed strings", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.string({ unit: "grapheme" }), (a, b) => {
        expect(timingSafeEqual(a, b)).toBe(a === b);
        expect(timingSafeEqual(a, a)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it("tells apart strings differing only in one character of a hex signature", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-f0-9]{64}$/), fc.nat({ max: 63 }), (signature, index) => {
        const flipped = signature.slice(0, index) + (signature[index] === "0" ? "1" : "0") + signature.slice(index + 1);
        expect(timingSafeEqual(signature, flipped)).toBe(false);
      }),
    );
  });

  it("tells apart distinct strings holding lone surrogates", () => {
    expect(timingSafeEqual("\ud800", "\udfff")).toBe(false);
    expect(timingSafeEqual("\ud800", "\ufffd")).toBe(false);
  });
});

// Rebuilds a JSON value with every object's keys in another order. Object.fromEntries keeps
// a "__proto__" key an own property, as JSON.parse does.
function shuffleKeys(value: unknown, seed: number): unknown {
  if (Array.isArray(value)) return value.map((item, index) => shuffleKeys(item, seed + index));
  if (value === null || typeof value !== "object") return value;
  const entries = Object.entries(value).map(([key, item], index) => [key, shuffleKeys(item, seed + index)] as const);
  let state = seed >>> 0;
  for (let i = entries.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const j = state % (i + 1);
    [entries[i], entries[j]] = [entries[j]!, entries[i]!];
  }
  return Object.fromEntries(entries);
}

describe("canonicalJson", () => {
  it("sorts keys at every level by UTF-16 code units and has no whitespace", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: true, y: null }], c: "x" }, "10": 2, "2": 3 })).toBe(
      '{"10":2,"2":3,"a":{"c":"x","d":[3,{"y":null,"z":true}]},"b":1}',
    );
  });

  it("drops undefined properties and writes undefined in arrays as null, like JSON.stringify", () => {
    expect(canonicalJson({ a: undefined, b: [undefined, 1] })).toBe('{"b":[null,1]}');
    expect(canonicalJson(undefined)).toBe("null");
  });

  it("gives the same text for the same value whatever its key order", () => {
    fc.assert(
      fc.property(fc.jsonValue({ stringUnit: "binary" }), fc.integer(), (value, seed) => {
        expect(canonicalJson(shuffleKeys(value, seed))).toBe(canonicalJson(value));
      }),
      { numRuns: 300 },
    );
  });

  it("parses back to a deep-equal value", () => {
    fc.assert(
      fc.property(fc.jsonValue({ stringUnit: "binary" }), (value) => {
        // Compared with JSON's own round trip: JSON has no -0, so both write it as 0.
        expect(JSON.parse(canonicalJson(value))).toEqual(JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 300 },
    );
  });

  it("keeps a __proto__ key as data", () => {
    const value = JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":1}}');
    expect(canonicalJson(value)).toBe('{"__proto__":{"polluted":true},"constructor":{"prototype":1}}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe("signCommand and verifyCommandSignature", () => {
  const commandKey = "a".repeat(64);
  const command: SignableCommand = {
    keyId: "1",
    requestId: "7d8a9f5e-3b1c-4a2d-9e8f-0a1b2c3d4e5f",
    type: "launch_app",
    payload: { packageName: "com.example.kiosk", options: { cold: true, extras: [1, "two"] } },
    issuedAt: "2024-05-01T10:00:00.000Z",
    expiresAt: "2024-05-02T10:00:00.000Z",
  };

  it("signs HMAC-SHA256 over keyId, requestId, type, issuedAt, expiresAt and the canonical payload", async () => {
    const expected = nodeHmac(
      commandKey,
      [
        command.keyId,
        command.requestId,
        command.type,
        command.issuedAt,
        command.expiresAt,
        '{"options":{"cold":true,"extras":[1,"two"]},"packageName":"com.example.kiosk"}',
      ].join("\n"),
    );
    expect(await signCommand(commandKey, command)).toBe(expected);
  });

  it("verifies its own signature, also after the payload's keys were reordered in transit", async () => {
    const signature = await signCommand(commandKey, command);
    expect(await verifyCommandSignature(commandKey, { ...command, signature })).toBe(true);
    const reordered = { ...command, payload: shuffleKeys(command.payload, 7) as Record<string, unknown> };
    expect(await verifyCommandSignature(commandKey, { ...reordered, signature })).toBe(true);
  });

  it.each<[string, Partial<SignableCommand>]>([
    ["payload value", { payload: { ...command.payload, packageName: "com.evil.app" } }],
    ["payload key added", { payload: { ...command.payload, extra: 1 } }],
    ["nested payload value", { payload: { ...command.payload, options: { cold: false, extras: [1, "two"] } } }],
    ["expiresAt", { expiresAt: "2099-05-02T10:00:00.000Z" }],
    ["issuedAt", { issuedAt: "2024-05-01T10:00:01.000Z" }],
    ["type", { type: "uninstall_app" }],
    ["requestId", { requestId: "7d8a9f5e-3b1c-4a2d-9e8f-0a1b2c3d4e60" }],
    ["keyId", { keyId: "2" }],
  ])("refuses a command whose %s was changed", async (_field, change) => {
    const signature = await signCommand(commandKey, command);
    expect(await verifyCommandSignature(commandKey, { ...command, ...change, signature })).toBe(false);
  });

  it("refuses another device's key and a malformed signature", async () => {
    const signature = await signCommand(commandKey, command);
    expect(await verifyCommandSignature("b".repeat(64), { ...command, signature })).toBe(false);
    expect(await verifyCommandSignature(commandKey, { ...command, signature: signature.toUpperCase() })).toBe(false);
    expect(await verifyCommandSignature(commandKey, { ...command, signature: signature.slice(0, 63) })).toBe(false);
    expect(await verifyCommandSignature(commandKey, { ...command, signature: "" })).toBe(false);
  });

  it("round-trips random commands and refuses them once the payload or expiry is tampered with", async () => {
    const signable = fc.record({
      keyId: fc.stringMatching(/^[A-Za-z0-9_-]{1,32}$/),
      requestId: fc.uuid(),
      type: fc.constantFrom(...CommandType.options),
      payload: fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 }),
      issuedAt: fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
      expiresAt: fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
    });
    await fc.assert(
      fc.asyncProperty(signable, fc.stringMatching(/^[a-f0-9]{64}$/), fc.integer(), async (signed, key, seed) => {
        const signature = await signCommand(key, signed);
        expect(await verifyCommandSignature(key, { ...signed, signature })).toBe(true);
        expect(await verifyCommandSignature(key, { ...signed, payload: shuffleKeys(signed.payload, seed) as Record<string, unknown>, signature })).toBe(true);
        expect(await verifyCommandSignature(key, { ...signed, payload: { ...signed.payload, "tampered\u0001": 1 }, signature })).toBe(false);
        expect(await verifyCommandSignature(key, { ...signed, expiresAt: `${signed.expiresAt} `, signature })).toBe(false);
      }),
      { numRuns: 100 },
    );
  });
});

describe("webhook signatures", () => {
  const secret = "whsec_test-secret";
  const body = '{"id":"e1","type":"ping","createdAt":"2026-11-30T00:00:00.000Z","data":{}}';

  it("signs t=<ts>,v1=<hex HMAC-SHA256 over '<ts>.<body>'>, as Stripe does, which Node's crypto reproduces", async () => {
    const header = await webhookSignatureHeader(secret, 1_800_000_000, body);
    expect(header).toBe(`t=1800000000,v1=${createHmac("sha256", secret).update(`1800000000.${body}`).digest("hex")}`);
  });

  it("verifies within the tolerance only, and only the body that was signed", async () => {
    const header = await webhookSignatureHeader(secret, 1_800_000_000, body);
    expect(await verifyWebhookSignature(secret, header, body, { nowSeconds: 1_800_000_100 })).toBe(true);
    expect(await verifyWebhookSignature(secret, header, body, { nowSeconds: 1_800_000_400 })).toBe(false);
    expect(await verifyWebhookSignature(secret, header, `${body} `, { nowSeconds: 1_800_000_000 })).toBe(false);
    expect(await verifyWebhookSignature("whsec_other", header, body, { nowSeconds: 1_800_000_000 })).toBe(false);
    expect(await verifyWebhookSignature(secret, "garbage", body, { nowSeconds: 1_800_000_000 })).toBe(false);
  });
});

describe("sealWithCommandKey / openWithCommandKey", () => {
  const key = "ab".repeat(32);

  it("opens what was sealed with the same key, and nothing sealed with another or altered", async () => {
    const sealed = await sealWithCommandKey(key, '{"deviceToken":"x.y"}');
    expect(sealed).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(await openWithCommandKey(key, sealed)).toBe('{"deviceToken":"x.y"}');
    await expect(openWithCommandKey("cd".repeat(32), sealed)).rejects.toThrow();
    // One character changed, inside the tag: it must differ from the one it replaces (the
    // last character's own test let 1 seal in 64 through unaltered).
    const at = sealed.length - 2;
    const altered = `${sealed.slice(0, at)}${sealed[at] === "A" ? "B" : "A"}${sealed.slice(at + 1)}`;
    expect(altered).not.toBe(sealed);
    await expect(openWithCommandKey(key, altered)).rejects.toThrow();
  });

  it("seals the same text differently each time (a fresh IV)", async () => {
    expect(await sealWithCommandKey(key, "same")).not.toBe(await sealWithCommandKey(key, "same"));
  });
});
