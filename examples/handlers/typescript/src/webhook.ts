// Standard Webhooks verification of tasker-runner requests, checked against
// contracts/testdata/webhook-vectors.json (see vectors.test.ts).
import { createHmac, timingSafeEqual } from "node:crypto";

export const TOLERANCE_SECONDS = 300;

export type WebhookErrorCode =
  | "invalid_secret"
  | "missing_headers"
  | "invalid_timestamp"
  | "timestamp_too_old"
  | "timestamp_too_new"
  | "invalid_signature";

export class WebhookError extends Error {
  constructor(readonly code: WebhookErrorCode) {
    super(code);
  }
}

export type Headers = Record<string, string | string[] | undefined>;

const header = (headers: Headers, name: string): string => {
  const v = headers[name];
  return (Array.isArray(v) ? v[0] : v) ?? "";
};

export class Verifier {
  private readonly keys: Buffer[];

  /** secrets: "whsec_" + standard base64 of 24 to 64 bytes; several during a rotation. */
  constructor(secrets: string[]) {
    if (secrets.length === 0) throw new WebhookError("invalid_secret");
    this.keys = secrets.map((secret) => {
      const b64 = secret.startsWith("whsec_") ? secret.slice("whsec_".length) : "";
      const key = Buffer.from(b64, "base64");
      // strict: the prefix, canonical standard base64, 24 to 64 bytes
      if (key.toString("base64") !== b64 || key.length < 24 || key.length > 64) throw new WebhookError("invalid_secret");
      return key;
    });
  }

  /** The webhook-signature value: one v1 entry per secret, in order. */
  sign(id: string, timestamp: string, body: Buffer | string): string {
    return this.keys.map((key) => "v1," + digest(key, id, timestamp, body).toString("base64")).join(" ");
  }

  /** Throws a WebhookError unless headers (webhook-id, -timestamp, -signature; lower case) sign body. */
  verify(headers: Headers, body: Buffer | string, now = Math.floor(Date.now() / 1000)): void {
    const [id, ts, sigs] = ["webhook-id", "webhook-timestamp", "webhook-signature"].map((h) => header(headers, h)) as [string, string, string];
    if (!id || !ts || !sigs) throw new WebhookError("missing_headers");
    if (!/^[0-9]{1,18}$/.test(ts)) throw new WebhookError("invalid_timestamp");
    if (BigInt(ts) < BigInt(now - TOLERANCE_SECONDS)) throw new WebhookError("timestamp_too_old");
    if (BigInt(ts) > BigInt(now + TOLERANCE_SECONDS)) throw new WebhookError("timestamp_too_new");
    const wanted = this.keys.map((key) => digest(key, id, ts, body));
    for (const entry of sigs.split(/\s+/).filter(Boolean)) {
      const [version, b64 = ""] = entry.split(/,(.*)/s);
      if (version !== "v1" || !/^[A-Za-z0-9+/]{43}=$/.test(b64)) continue; // another scheme (v1a, v2) or not a signature
      const got = Buffer.from(b64, "base64");
      if (got.length === 32 && wanted.some((w) => timingSafeEqual(got, w))) return;
    }
    throw new WebhookError("invalid_signature");
  }
}

function digest(key: Buffer, id: string, timestamp: string, body: Buffer | string): Buffer {
  return createHmac("sha256", key).update(`${id}.${timestamp}.`).update(body).digest();
}
