// HMAC helpers on WebCrypto, so the same code signs in Node, in the browser and on the
// simulator. HMAC keys are the UTF-8 bytes of the secret string.

const encoder = new TextEncoder();

function toBytes(data: string | Uint8Array): Uint8Array<ArrayBuffer> {
  return typeof data === "string" ? encoder.encode(data) : new Uint8Array(data);
}

function toHex(buffer: ArrayBuffer): string {
  return Array.from(new Uint8Array(buffer), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  return toHex(await crypto.subtle.digest("SHA-256", toBytes(data)));
}

export async function hmacSha256Hex(secret: string, message: string | Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey("raw", toBytes(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return toHex(await crypto.subtle.sign("HMAC", key, toBytes(message)));
}

/** Compares two strings, UTF-16 unit by unit, in time that depends only on their length. */
export function timingSafeEqual(a: string, b: string): boolean {
  let difference = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ (i < b.length ? b.charCodeAt(i) : 0);
  return difference === 0;
}

// ---- Admin request signatures -------------------------------------------------------

export const ADMIN_SIGNATURE_WINDOW_SECONDS = 300;

export type AdminSignatureInput = {
  timestamp: string;
  nonce: string;
  method: string;
  /** The Host header as sent (`api.example.com`, `127.0.0.1:8000`): a signature made for one name is refused under another. */
  host: string;
  /** Path and query exactly as sent, e.g. `/admin/devices?limit=10`. */
  pathWithQuery: string;
  body: string | Uint8Array;
};

export async function adminSigningString(input: AdminSignatureInput): Promise<string> {
  const bodyHash = await sha256Hex(input.body);
  return [input.timestamp, input.nonce, input.method.toUpperCase(), input.host.toLowerCase(), input.pathWithQuery, bodyHash].join("\n");
}

export async function adminSignature(hmacSecret: string, input: AdminSignatureInput): Promise<string> {
  return hmacSha256Hex(hmacSecret, await adminSigningString(input));
}

function randomNonce(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(16)).buffer);
}

/** The four headers of an authenticated admin request. */
export async function signAdminRequest(options: {
  adminKey: string;
  hmacSecret: string;
  method: string;
  host: string;
  pathWithQuery: string;
  body?: string | Uint8Array;
  timestamp?: number;
  nonce?: string;
}): Promise<Record<"X-Admin" | "X-Timestamp" | "X-Nonce" | "X-Signature", string>> {
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const nonce = options.nonce ?? randomNonce();
  const signature = await adminSignature(options.hmacSecret, {
    timestamp,
    nonce,
    method: options.method,
    host: options.host,
    pathWithQuery: options.pathWithQuery,
    body: options.body ?? "",
  });
  return { "X-Admin": options.adminKey, "X-Timestamp": timestamp, "X-Nonce": nonce, "X-Signature": signature };
}

// ---- Command signatures -------------------------------------------------------------

/** JSON with object keys sorted at every level, so signer and verifier see the same bytes. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

export type SignableCommand = {
  /** Which command key signed it (a device keeps its key per id, so keys can rotate). */
  keyId: string;
  requestId: string;
  type: string;
  payload: Record<string, unknown>;
  issuedAt: string;
  expiresAt: string;
};

export function commandSigningString(command: SignableCommand): string {
  return [command.keyId, command.requestId, command.type, command.issuedAt, command.expiresAt, canonicalJson(command.payload)].join("\n");
}

export async function signCommand(commandKey: string, command: SignableCommand): Promise<string> {
  return hmacSha256Hex(commandKey, commandSigningString(command));
}

export async function verifyCommandSignature(commandKey: string, command: SignableCommand & { signature: string }): Promise<boolean> {
  return timingSafeEqual(await signCommand(commandKey, command), command.signature);
}

// ---- Webhook signatures -------------------------------------------------------------

/** `Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, as Stripe signs. */
export async function webhookSignatureHeader(secret: string, timestamp: number, body: string): Promise<string> {
  return `t=${timestamp},v1=${await hmacSha256Hex(secret, `${timestamp}.${body}`)}`;
}

/** Verifies a `Webhook-Signature` header against the raw body, refusing timestamps further than `toleranceSeconds` from `nowSeconds`. */
export async function verifyWebhookSignature(
  secret: string,
  header: string,
  body: string,
  options: { nowSeconds?: number; toleranceSeconds?: number } = {},
): Promise<boolean> {
  const parts = new Map(header.split(",").map((part) => part.trim().split("=", 2) as [string, string]));
  const timestamp = Number(parts.get("t"));
  const signature = parts.get("v1");
  if (!Number.isInteger(timestamp) || !signature) return false;
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > (options.toleranceSeconds ?? 300)) return false;
  return timingSafeEqual(await hmacSha256Hex(secret, `${timestamp}.${body}`), signature);
}

// ---- Sealing secrets for one device -------------------------------------------------

function toBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}

/** AES-256-GCM key for sealing, derived from the command key (never the HMAC key itself). */
async function sealingKey(commandKey: string): Promise<CryptoKey> {
  const hmac = await crypto.subtle.importKey("raw", toBytes(commandKey), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const raw = await crypto.subtle.sign("HMAC", hmac, toBytes("mdm seal v1"));
  return crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

/**
 * Encrypts `plaintext` so only the holder of `commandKey` can read it: how a new device
 * token and command key travel in a `rotate_token` command (whose payload is stored,
 * listed in the command history and may go through FCM). base64url of iv (12 bytes) and
 * AES-GCM ciphertext with its tag.
 */
export async function sealWithCommandKey(commandKey: string, plaintext: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, await sealingKey(commandKey), toBytes(plaintext)));
  const out = new Uint8Array(iv.length + sealed.length);
  out.set(iv);
  out.set(sealed, iv.length);
  return toBase64Url(out);
}

/** Reverses `sealWithCommandKey`; throws when the key is wrong or the text was altered. */
export async function openWithCommandKey(commandKey: string, sealed: string): Promise<string> {
  const bytes = fromBase64Url(sealed);
  const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: bytes.slice(0, 12) }, await sealingKey(commandKey), bytes.slice(12));
  return new TextDecoder().decode(plain);
}
