// tasker-runner example handler service in TypeScript on Node's http module.
// Runs the steps of the example workflows (examples/templates; see README.md and contracts/README.md):
//
//   npm ci && npm run build && PORT=8094 TASKER_WEBHOOK_SECRET=whsec_... npm start
//
// POST / or POST /<callable> runs a step envelope, or a batch {"steps": [...]}; GET /health answers ok.
// With TASKER_WEBHOOK_SECRET set (several space-separated during a rotation) every request must carry a
// valid Standard Webhooks signature. SIGTERM or SIGINT stops the server.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import * as th from "./helpers.js";
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
  checkpoint?: th.Checkpoint;
}

export interface StepEnvelope {
  event_id: string;
  task: { task_uuid: string; context: Record<string, unknown> };
  step: { step_uuid: string; name?: string; attempts: number; inputs?: unknown; checkpoint?: unknown };
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

// --- the approval workflow (a decision point) and the batch ETL (batches, checkpoints) ---

const APPROVALS = ["auto_approve", "manager_approval", "finance_review"]; // the decision's branches, in template order
const AUTO_APPROVE_BELOW = 1000;
const FINANCE_REVIEW_FROM = 5000;
const FINANCE_REFUSE_ABOVE = 25_000;

/** The decision: which approvals the request's amount needs (none at 0 or less). */
function route(env: StepEnvelope): unknown {
  const request = env.task.context["request"] as { amount?: unknown } | undefined;
  const amount = request?.amount;
  if (typeof amount !== "number") throw new StepFailure("invalid_context", "the task context has no request.amount");
  const extra = { amount };
  if (amount <= 0) return th.noBranches().result(extra);
  if (amount < AUTO_APPROVE_BELOW) return th.createSteps("auto_approve").result(extra);
  if (amount < FINANCE_REVIEW_FROM) return th.createSteps("manager_approval").result(extra);
  return th.createSteps("manager_approval", "finance_review").result(extra);
}

function routeAmount(env: StepEnvelope): number {
  try {
    return th.dependencyField(env, "route_approval", "amount") as number;
  } catch (e) {
    throw new StepFailure("missing_dependency", String(e));
  }
}

const approve = (approver: string, limit?: number) => (env: StepEnvelope): unknown => {
  const amount = routeAmount(env);
  const approved = limit === undefined || amount <= limit;
  return { approved, approver, amount, ...(approved ? {} : { reason: `over the ${approver} limit of ${limit}` }) };
};

/** The convergence: runs once, after whichever approvals were created. */
function finalize(env: StepEnvelope): unknown {
  const amount = routeAmount(env);
  const taken = APPROVALS.filter((name) => Object.hasOwn(env.dependency_results, name)); // a branch not taken was never created
  const approved = taken.map((name) => {
    try {
      return th.dependencyField(env, name, "approved") === true;
    } catch {
      return false;
    }
  });
  const decision = taken.length === 0 ? "nothing_to_approve" : approved.every(Boolean) ? "approved" : "rejected";
  return { decision, approvals: taken, amount };
}

function readETL(env: StepEnvelope): { rows: number; workers: number; every: number } {
  const etl = env.task.context["etl"] as { rows?: unknown; workers?: number; checkpoint_every?: number } | undefined;
  if (!Number.isInteger(etl?.rows) || (etl?.rows as number) < 0) throw new StepFailure("invalid_context", "the task context has no etl.rows");
  return { rows: etl?.rows as number, workers: Math.max(etl?.workers ?? 4, 1), every: Math.max(etl?.checkpoint_every ?? 1000, 1) };
}

/** The generated row's amount in cents: from its id alone, so every language agrees. */
export const rowAmount = (id: number): number => (id * 7919) % 10007;

/** The batchable step: even cursor ranges over the rows, one transform_rows worker each. */
function analyze(env: StepEnvelope): unknown {
  const { rows, workers } = readETL(env);
  if (rows === 0) return th.noBatches().result({ rows: 0 });
  return th.createBatches("transform_rows", th.evenCursors(rows, workers), rows).result({ rows });
}

interface Progress { rows: number; amount_cents: number; calls: number }

/** A batch worker: checkpoint_every rows per call, a checkpoint after each call but the last. */
function transform(env: StepEnvelope): unknown {
  const { every } = readETL(env);
  let inputs: th.BatchWorkerInputs, start: number, end: number, pos: number, acc: Progress;
  try {
    inputs = th.batchWorker(env);
    [start, end] = th.intRange(inputs.cursor);
    const cp = th.resumeFrom(env);
    pos = cp ? th.intCursor(cp) : start;
    acc = cp ? (cp.accumulated_results as Progress) : { rows: 0, amount_cents: 0, calls: 0 };
  } catch (e) {
    throw new StepFailure("invalid_inputs", String(e));
  }
  const stop = Math.min(pos + every, end);
  let cents = acc.amount_cents;
  for (let id = pos; id < stop; id++) cents += rowAmount(id);
  acc = { rows: acc.rows + stop - pos, amount_cents: cents, calls: acc.calls + 1 };
  if (stop < end) return th.yieldCheckpoint(stop, stop - start, acc);
  return { batch_id: inputs.cursor.batch_id, start, end, ...acc };
}

/** The convergence: adds up every worker's result (a failed worker shows as success false). */
function aggregate(env: StepEnvelope): unknown {
  let expected: unknown;
  try {
    expected = th.dependencyField(env, "analyze_rows", "rows");
  } catch (e) {
    throw new StepFailure("missing_dependency", String(e));
  }
  const out = { workers: 0, failed_workers: 0, rows: 0, rows_expected: expected, amount_cents: 0 };
  for (const name of Object.keys(env.dependency_results)) {
    if (!name.startsWith("transform_rows_")) continue;
    try {
      const rows = th.dependencyField(env, name, "rows") as number;
      const cents = th.dependencyField(env, name, "amount_cents") as number;
      out.workers++;
      out.rows += rows;
      out.amount_cents += cents;
    } catch (e) {
      if (e instanceof th.DependencyFailed) out.failed_workers++;
      else if (!(e instanceof th.FieldNotFound)) throw e; // not found: the placeholder worker of no_batches
    }
  }
  return out;
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
  "approval.route": route,
  "approval.auto_approve": approve("policy", AUTO_APPROVE_BELOW),
  "approval.manager_approval": approve("manager"),
  "approval.finance_review": approve("finance", FINANCE_REFUSE_ABOVE),
  "approval.finalize": finalize,
  "etl.analyze": analyze,
  "etl.transform": transform,
  "etl.aggregate": aggregate,
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
    const value = step(env); // a th.Answer (an outcome, a checkpoint) is the answer as it is
    out = { result: value instanceof th.Answer ? { ...value } : { success: true, status: "completed", result: value }, status: 200 };
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

/** Whether the request's Tasker-Deadline (RFC 3339) has passed: the runner has stopped waiting. */
function deadlinePassed(req: IncomingMessage): boolean {
  const deadline = Date.parse(String(req.headers["tasker-deadline"] ?? ""));
  return !Number.isNaN(deadline) && deadline <= Date.now();
}

/** The answer for a step whose deadline passed: a retryable failure, without running it. */
function tooLate(env: StepEnvelope): StepResult {
  const f = new StepFailure("deadline_exceeded", "Tasker-Deadline passed before the step started", { retryable: true });
  return { step_uuid: env.step.step_uuid, ...failed(f) };
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
  const late = deadlinePassed(req); // work past Tasker-Deadline is wasted: the step comes again
  if (isObject(request) && Array.isArray(request["steps"]) && request["steps"].every(isEnvelope)) {
    return reply(res, 200, { results: request["steps"].map((env) => (late ? tooLate(env) : runStep(env).result)) });
  }
  if (!isEnvelope(request)) return reply(res, 400, failed(new StepFailure("bad_request", "not a step envelope or a batch")));
  if (late) return reply(res, 200, tooLate(request));
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
