// tasker-runner example handler service in TypeScript on Node's http module.
// Runs the steps of an order-fulfilment workflow (see README.md and contracts/README.md):
//
//   npm ci && npm run build && PORT=8094 TASKER_WEBHOOK_SECRET=whsec_... npm start
//
// POST / or POST /<callable> runs a step envelope, or a batch {"steps": [...]}; GET /health answers ok.
// With TASKER_WEBHOOK_SECRET set (several space-separated during a rotation) every request must carry a
// valid Standard Webhooks signature. SIGTERM or SIGINT stops the server.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { Verifier, WebhookError } from "./webhook.js";

export const MAX_BODY_BYTES = 4 << 20; // larger requests get 413, as in the Go example
const DISCARD_LIMIT = 64 << 20; // an unread body up to this size is discarded before an error answer, or the connection closed

// --- the contract's shapes (contracts/schema); unknown fields are ignored ---

export interface StepResult {
  step_uuid?: string;
  success: boolean;
  status?: "completed" | "failed" | "yielded";
  result?: unknown;
  metadata?: Record<string, unknown>;
  error?: { message: string; error_type?: string; retryable?: boolean; status_code?: number };
  orchestration_metadata?: { backoff_hint?: { delay_seconds: number; backoff_type?: string } };
}

export interface StepEnvelope {
  event_id: string;
  task: { task_uuid: string; context: Record<string, unknown> };
  step: { step_uuid: string; attempts: number; inputs?: Record<string, unknown> };
  step_definition: { handler: { callable: string } };
  dependency_results: Record<string, StepResult>;
}

// --- the steps ---

/** Fails a step: retryable false makes it permanent; status (503, 422...) is the HTTP status of a
 * single-step answer; retryAfter (seconds) asks the runner to wait before the next attempt. */
export class StepFailure extends Error {
  constructor(
    readonly errorType: string,
    message: string,
    readonly opts: { retryable?: boolean; status?: number; retryAfter?: number } = {},
  ) {
    super(message);
  }
}

interface Order { total?: number; currency?: string; address?: string; items?: unknown[] }

function readOrder(env: StepEnvelope): Order {
  const order = env.task.context["order"] ?? {};
  const o = order as Record<string, unknown>;
  if (typeof order !== "object" || Array.isArray(order) || !["number", "undefined"].includes(typeof o["total"]) ||
    !(o["items"] === undefined || Array.isArray(o["items"])) || !["string", "undefined"].includes(typeof o["address"])) {
    throw new StepFailure("invalid_context", "the task context is not an order");
  }
  return order as Order;
}

export const steps: Record<string, (env: StepEnvelope) => unknown> = {
  "order_fulfillment.validate_order": (env) => {
    const order = readOrder(env);
    const problems: string[] = [];
    if (!((order.total ?? 0) > 0)) problems.push("order.total must be positive");
    if (!order.items?.length) problems.push("order.items is empty");
    return { valid: problems.length === 0, problems, total: order.total ?? 0 };
  },
  "order_fulfillment.charge": (env) => {
    const order = readOrder(env);
    const validation = env.dependency_results["validate_order"]?.result as { valid?: unknown } | null | undefined;
    if (validation?.valid !== true) throw new StepFailure("order_invalid", "validate_order did not find the order valid");
    const total = order.total ?? 0;
    if (total > 10_000) throw new StepFailure("card_declined", `card declined for ${total.toFixed(2)}`); // a business failure, in a 200
    // the step_uuid is the same on every attempt: charging twice is charging once
    return { charge_id: `ch_${env.step.step_uuid}`, amount: total, currency: order.currency || "EUR" };
  },
  "order_fulfillment.reserve_stock": (env) => {
    if (env.step.attempts < 2) { // a retryable failure: 503 with Retry-After
      throw new StepFailure("warehouse_busy", "the warehouse is busy, try again shortly", { retryable: true, status: 503, retryAfter: 1 });
    }
    return { reservation_id: `rsv_${env.step.step_uuid}`, attempt: env.step.attempts };
  },
  "order_fulfillment.ship": (env) => {
    const order = readOrder(env);
    // a permanent failure: 422, retryable false
    if (!order.address) throw new StepFailure("no_address", "order.address is missing", { status: 422 });
    return { tracking: `trk_${env.task.task_uuid}`, address: order.address };
  },
  "conformance.echo": (env) => ({ step_uuid: env.step.step_uuid, attempt: env.step.attempts, inputs: env.step.inputs }),
};

// --- results and the HTTP service ---

export function failed(f: StepFailure): StepResult {
  const { retryable = false, status, retryAfter } = f.opts;
  const result: StepResult = {
    success: false, status: "failed",
    error: { message: f.message, error_type: f.errorType, retryable, ...(status ? { status_code: status } : {}) },
  };
  if (retryAfter) result.orchestration_metadata = { backoff_hint: { delay_seconds: retryAfter, backoff_type: "server_requested" } };
  return result;
}

/** Runs one envelope: returns its StepExecutionResult, the HTTP status and the Retry-After seconds. */
export function runStep(env: StepEnvelope): { result: StepResult; status: number; retryAfter?: number } {
  const callable = String(env.step_definition.handler.callable ?? "");
  const step = Object.hasOwn(steps, callable) ? steps[callable] : undefined;
  if (!step) {
    const f = new StepFailure("handler_not_found", `this service has no step ${JSON.stringify(callable)}`, { status: 404 });
    return { result: { step_uuid: env.step.step_uuid, ...failed(f) }, status: 404 };
  }
  const start = performance.now();
  let out: { result: StepResult; status: number; retryAfter?: number };
  try {
    out = { result: { success: true, status: "completed", result: step(env) }, status: 200 };
  } catch (e) { // any other error is a retryable handler_error
    const f = e instanceof StepFailure ? e : new StepFailure("handler_error", String(e), { retryable: true });
    out = { result: failed(f), status: f.opts.status ?? 200, ...(f.opts.retryAfter ? { retryAfter: f.opts.retryAfter } : {}) };
  }
  console.log(`${new Date().toISOString()} ${callable} ${out.result.status} step_uuid=${env.step.step_uuid} attempt=${env.step.attempts}`);
  out.result = {
    step_uuid: env.step.step_uuid, ...out.result,
    metadata: { execution_time_ms: Math.round(performance.now() - start), handler: "examples/handlers/typescript" },
  };
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function isEnvelope(v: unknown): v is StepEnvelope {
  if (!isObject(v) || !isObject(v["task"]) || !isObject(v["step"]) || !isObject(v["step_definition"])) return false;
  v["dependency_results"] ??= {};
  v["task"]["context"] ??= {};
  v["step_definition"]["handler"] ??= {};
  return isObject(v["dependency_results"]) && isObject(v["task"]["context"]) && isObject(v["step_definition"]["handler"]);
}

/** Reads the body, or null when it is larger than MAX_BODY_BYTES. */
function readBody(req: IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.pause();
        resolve(null);
      } else chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function reply(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": typeof body === "string" ? "text/plain" : "application/json",
    "Content-Length": String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

// Answers with an RFC 9457 problem. Node discards an unread body after the answer (so that the client still
// sending it reads the answer); past DISCARD_LIMIT the connection is closed instead.
function problem(res: ServerResponse, status: number, detail: string): void {
  const unread = Number(res.req.headers["content-length"] ?? 0);
  const close: Record<string, string> = unread > DISCARD_LIMIT ? { Connection: "close" } : {};
  reply(res, status, { type: "about:blank", status, detail }, { "Content-Type": "application/problem+json", ...close });
}

export async function serve(req: IncomingMessage, res: ServerResponse, verifier?: Verifier): Promise<void> {
  if (req.method === "GET" && req.url === "/health") return reply(res, 200, "ok\n");
  if (req.method !== "POST") return problem(res, 405, "POST a step envelope");
  const signing = ["webhook-id", "webhook-timestamp", "webhook-signature"].map((h) => req.headers[h]);
  if (verifier && signing.some((v) => !v)) return problem(res, 401, "webhook: missing signature headers"); // before reading the body
  const tooLarge = `request body larger than ${MAX_BODY_BYTES} bytes`;
  if (Number(req.headers["content-length"] ?? 0) > MAX_BODY_BYTES) return problem(res, 413, tooLarge);
  const body = await readBody(req);
  if (body === null) return problem(res, 413, tooLarge);
  try {
    verifier?.verify(req.headers, body);
  } catch (e) {
    if (e instanceof WebhookError) return problem(res, 401, `webhook: ${e.code}`);
    throw e;
  }
  let request: unknown;
  try {
    request = JSON.parse(body.toString("utf8"));
  } catch {
    request = undefined;
  }
  if (isObject(request) && Array.isArray(request["steps"]) && request["steps"].every(isEnvelope)) {
    return reply(res, 200, { results: request["steps"].map((env) => runStep(env).result) });
  }
  if (!isEnvelope(request)) return reply(res, 400, failed(new StepFailure("bad_request", "not a step envelope or a batch")));
  const { result, status, retryAfter } = runStep(request);
  reply(res, status, result, retryAfter ? { "Retry-After": String(retryAfter) } : {});
}

export function main(): void {
  const secrets = (process.env["TASKER_WEBHOOK_SECRET"] ?? "").split(/\s+/).filter(Boolean);
  let verifier: Verifier | undefined;
  try {
    verifier = secrets.length > 0 ? new Verifier(secrets) : undefined;
  } catch {
    console.error("typescript-handler: TASKER_WEBHOOK_SECRET must be whsec_ and the base64 of 24 to 64 bytes");
    process.exit(1);
  }
  const server = createServer((req, res) => {
    serve(req, res, verifier).catch((e: unknown) => {
      console.error("request failed:", e);
      if (!res.headersSent) problem(res, 500, "internal error");
    });
  });
  const host = process.env["HOST"];
  server.listen(Number(process.env["PORT"] ?? 8094), host, () => {
    const { port } = server.address() as AddressInfo;
    console.log(`${new Date().toISOString()} listening on http://${host ?? "0.0.0.0"}:${port} (signed: ${verifier ? "yes" : "no"})`);
  });
  const shutdown = (): void => {
    console.log(`${new Date().toISOString()} shutting down`);
    server.close(() => process.exit(0)); // finishes in-flight requests, closes idle connections
    setTimeout(() => process.exit(0), 10_000).unref();
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
