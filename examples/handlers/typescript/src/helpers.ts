// Dynamic-workflow helpers for handler authors: TypeScript versions of the Go helpers in tasker-runner's
// contracts package (outcome.go, cursor.go, dependency.go, checkpoint.go; contracts/README.md, "Dynamic
// workflows"), with the same names in camelCase and the same results. helpers.test.ts checks them against
// examples/handlers/testdata/helper-vectors.json, which Go computes.
//
//   createSteps("manager_approval").result({ amount: 7500 })            // a decision
//   noBranches().result()
//   createBatches("process", evenCursors(total, 8), total).result()     // a batch; cursorsBySize(total, 1000)
//   noBatches().result()
//   const inputs = batchWorker(env); const [start, end] = intRange(inputs.cursor);
//   const cp = resumeFrom(env);                                          // null on the first call; intCursor(cp)
//   return yieldCheckpoint(cursor, itemsProcessed, accumulatedResults);
//   dependencyField(env, "fetch_order", "items[2].sku");
//
// A step returns an Answer (what .result() and yieldCheckpoint() build) to answer with it as it is, rather
// than have its return value wrapped in a completed result.
import type { StepEnvelope, StepResult } from "./handler.js";

/** A whole StepExecutionResult, sent as it is. */
export class Answer implements StepResult {
  declare success: boolean;
  declare status?: "completed" | "failed" | "yielded";
  declare result?: unknown;
  declare checkpoint?: Checkpoint;
  constructor(r: StepResult) {
    Object.assign(this, r);
  }
}

/** A document that is not what the contract says; field is the JSON path of the culprit. */
export class HelperError extends Error {
  constructor(readonly field: string, problem: string) {
    super(`${field}: ${problem}`);
    this.name = "HelperError";
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

// --- outcomes (outcome.go) ---

/** An outcome: its JSON fields, and result(), which knows its key in the result. */
export class Outcome {
  readonly #key: string;
  [field: string]: unknown;
  constructor(key: string, fields: Record<string, unknown>) {
    this.#key = key;
    Object.assign(this, fields);
  }

  /** A successful result whose result is {<outcome key>: this} merged with extra (the outcome's key wins). */
  result(extra: Record<string, unknown> | null = null): Answer {
    return new Answer({ success: true, status: "completed", result: { ...(extra ?? {}), [this.#key]: { ...this } } });
  }
}

/** The decision that creates the named steps (each must depend on the decision step). */
export const createSteps = (...stepNames: string[]): Outcome =>
  new Outcome("decision_point_outcome", { type: "create_steps", step_names: stepNames });

/** The decision that creates no step. */
export const noBranches = (): Outcome => new Outcome("decision_point_outcome", { type: "no_branches" });

/** One worker step per cursor config, named <workerTemplateName>_<batch_id>. */
export function createBatches(workerTemplateName: string, cursorConfigs: CursorConfig[], totalItems: number): Outcome {
  const fields: Record<string, unknown> = { type: "create_batches", worker_template_name: workerTemplateName };
  if (cursorConfigs.length > 0) Object.assign(fields, { worker_count: cursorConfigs.length, cursor_configs: cursorConfigs });
  if (totalItems !== 0) fields["total_items"] = totalItems; // as Go's omitempty
  return new Outcome("batch_processing_outcome", fields);
}

/** The batch outcome that creates no worker (the convergence step still runs). */
export const noBatches = (): Outcome => new Outcome("batch_processing_outcome", { type: "no_batches" });

// --- cursors (cursor.go) ---

export interface CursorConfig {
  batch_id: string;
  start_cursor: unknown;
  end_cursor: unknown;
  batch_size: number;
}

/** The id of the n-th batch (1-based): "001", "002", ..., "999", "1000". */
export const batchId = (n: number): string => String(n).padStart(3, "0");

/** The cursor config of the n-th batch, for any JSON cursors (timestamps, keys, page tokens). */
export const newCursorConfig = (n: number, start: unknown, end: unknown, batchSize: number): CursorConfig =>
  ({ batch_id: batchId(n), start_cursor: start, end_cursor: end, batch_size: batchSize });

/** Splits [0, total) into `workers` contiguous ranges whose sizes differ by at most one, larger first
 * (10 on 4: 3, 3, 2, 2); never more ranges than items; [] when total <= 0. */
export function evenCursors(total: number, workers: number): CursorConfig[] {
  if (total <= 0) return [];
  const w = Math.min(Math.max(workers, 1), total);
  const base = Math.floor(total / w);
  const extra = total % w;
  const out: CursorConfig[] = [];
  for (let i = 0, start = 0; i < w; i++) {
    const size = base + (i < extra ? 1 : 0);
    out.push(newCursorConfig(i + 1, start, start + size, size));
    start += size;
  }
  return out;
}

/** Splits [0, total) into ranges of `size` items, the last one shorter; size < 1 means one range. */
export function cursorsBySize(total: number, size: number): CursorConfig[] {
  if (total <= 0) return [];
  const sz = size < 1 || size > total ? total : size;
  const out: CursorConfig[] = [];
  for (let start = 0, n = 1; start < total; start += sz, n++) {
    const end = Math.min(start + sz, total);
    out.push(newCursorConfig(n, start, end, end - start));
  }
  return out;
}

/** [start, end] of an integer cursor config; throws unless both are integers and end >= start. */
export function intRange(cursor: CursorConfig): [number, number] {
  const { start_cursor: start, end_cursor: end } = cursor;
  if (!Number.isInteger(start) || !Number.isInteger(end)) {
    throw new Error(`batch ${JSON.stringify(cursor.batch_id)}: start_cursor and end_cursor must be integers`);
  }
  if ((end as number) < (start as number)) throw new Error(`batch ${JSON.stringify(cursor.batch_id)}: end_cursor ${end} is before start_cursor ${start}`);
  return [start as number, end as number];
}

// --- a batch worker's inputs (cursor.go: BatchWorker) ---

export interface BatchWorkerInputs {
  cursor: CursorConfig;
  batch_metadata: { cursor_field: string; failure_strategy: string };
  is_no_op: boolean;
}

function stringField(at: string, v: unknown): string {
  if (typeof v !== "string") throw new HelperError(at, v === undefined || v === null ? "missing" : "not a string");
  return v;
}

function countField(at: string, v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 0) throw new HelperError(at, `not a non-negative integer (got ${JSON.stringify(v)})`);
  return v as number;
}

function cursorField(at: string, raw: unknown): CursorConfig {
  if (!isObject(raw)) throw new HelperError(at, "not an object");
  const id = stringField(`${at}.batch_id`, raw["batch_id"]);
  if (id === "") throw new HelperError(`${at}.batch_id`, "empty");
  for (const f of ["start_cursor", "end_cursor"]) if (!(f in raw)) throw new HelperError(`${at}.${f}`, "missing");
  const size = raw["batch_size"] ?? null;
  return { batch_id: id, start_cursor: raw["start_cursor"], end_cursor: raw["end_cursor"], batch_size: size === null ? 0 : countField(`${at}.batch_size`, size) };
}

/** step.inputs of a batch worker, defaults filled in; the flat form (the cursor config itself) too.
 * Throws a HelperError otherwise. */
export function batchWorker(env: StepEnvelope): BatchWorkerInputs {
  const at = "step.inputs";
  const inputs = env.step.inputs ?? null;
  if (inputs === null) throw new HelperError(at, `empty: step ${JSON.stringify(env.step.name)} is not a batch worker`);
  if (!isObject(inputs)) throw new HelperError(at, "not an object");
  const meta = { cursor_field: "", failure_strategy: "" };
  if (!("cursor" in inputs)) {
    if (!("batch_id" in inputs)) throw new HelperError(`${at}.cursor`, `missing: step ${JSON.stringify(env.step.name)} is not a batch worker`);
    return { cursor: cursorField(at, inputs), batch_metadata: meta, is_no_op: false };
  }
  const cursor = cursorField(`${at}.cursor`, inputs["cursor"]);
  const rawMeta = inputs["batch_metadata"] ?? null;
  if (rawMeta !== null) {
    if (!isObject(rawMeta)) throw new HelperError(`${at}.batch_metadata`, "not an object");
    for (const f of ["cursor_field", "failure_strategy"] as const) {
      if ((rawMeta[f] ?? null) !== null) meta[f] = stringField(`${at}.batch_metadata.${f}`, rawMeta[f]);
    }
  }
  const noOp = inputs["is_no_op"] ?? null;
  if (noOp !== null && typeof noOp !== "boolean") throw new HelperError(`${at}.is_no_op`, "not a boolean");
  return { cursor, batch_metadata: meta, is_no_op: noOp === true };
}

// --- checkpoints (checkpoint.go) ---

export interface Checkpoint {
  cursor: unknown;
  items_processed: number;
  accumulated_results?: unknown;
}

/** The result that saves a checkpoint and asks to be called again at once, without using an attempt. */
export function yieldCheckpoint(cursor: unknown, itemsProcessed: number, accumulatedResults?: unknown): Answer {
  const checkpoint: Checkpoint = { cursor, items_processed: itemsProcessed };
  if (accumulatedResults !== undefined && accumulatedResults !== null) checkpoint.accumulated_results = accumulatedResults;
  return new Answer({ success: false, status: "yielded", checkpoint });
}

/** The checkpoint the step last yielded, or null on the first call; throws a HelperError when it is malformed. */
export function resumeFrom(env: StepEnvelope): Checkpoint | null {
  const at = "step.checkpoint";
  const cp = env.step.checkpoint ?? null;
  if (cp === null) return null;
  if (!isObject(cp)) throw new HelperError(at, "not an object");
  const out: Checkpoint = { cursor: cp["cursor"] ?? null, items_processed: 0 };
  if ((cp["items_processed"] ?? null) !== null) out.items_processed = countField(`${at}.items_processed`, cp["items_processed"]);
  if ("accumulated_results" in cp) out.accumulated_results = cp["accumulated_results"];
  return out;
}

/** The checkpoint's cursor as an integer; throws when it is not one. */
export function intCursor(checkpoint: Checkpoint): number {
  if (!Number.isInteger(checkpoint.cursor)) throw new Error(`checkpoint cursor ${JSON.stringify(checkpoint.cursor)} is not an integer`);
  return checkpoint.cursor as number;
}

// --- dependency results (dependency.go) ---

/** Reading a dependency's field failed; the subclasses tell the causes apart. */
export class DependencyError extends Error {
  override name = "DependencyError";
}
/** Not in dependency_results (not an ancestor, or not completed). */
export class UnknownDependency extends DependencyError {
  override name = "UnknownDependency";
}
/** The dependency's result reports a failure. */
export class DependencyFailed extends DependencyError {
  override name = "DependencyFailed";
}
/** A key is missing or an index out of range: catch FieldNotFound for an optional field. */
export class FieldNotFound extends DependencyError {
  override name = "FieldNotFound";
}

const PART = /^([^[\]]*)((?:\[\d+\])*)$/;

function parsePath(path: string): (string | number)[] {
  if (path === "") return [];
  return path.split(".").flatMap((part, i) => {
    const m = PART.exec(part);
    if (!m) throw new DependencyError(`path ${JSON.stringify(path)}: bad segment ${JSON.stringify(part)}: want key[n][m]...`);
    const key = m[1] ?? "";
    const indices = m[2] ?? "";
    if (key === "" && (i > 0 || indices === "")) throw new DependencyError(`path ${JSON.stringify(path)}: empty key`);
    return [...(key ? [key] : []), ...Array.from(indices.matchAll(/\d+/g), (d) => Number(d[0]))];
  });
}

/** The value at path ("order.total", "items[2].sku", "[0]", "": all) in the result of dependency `step`.
 * Throws UnknownDependency, DependencyFailed, FieldNotFound, or DependencyError (a bad path, or a key of
 * something that is not an object, an index of something that is not an array). */
export function dependencyField(env: Pick<StepEnvelope, "dependency_results">, step: string, path = ""): unknown {
  const q = JSON.stringify(step);
  let segments: (string | number)[];
  try {
    segments = parsePath(path);
  } catch (e) {
    throw new DependencyError(`dependency ${q}: ${(e as Error).message}`);
  }
  const deps = env.dependency_results ?? {};
  const dep = Object.hasOwn(deps, step) ? deps[step] : undefined;
  if (!dep) throw new UnknownDependency(`dependency ${q}: unknown dependency (dependency_results has ${JSON.stringify(Object.keys(deps).sort())})`);
  if (!dep.success || dep.status === "failed") {
    throw new DependencyFailed(`dependency ${q}: dependency failed: ${dep.error?.message ?? "no error given"}`);
  }
  let cur: unknown = dep.result ?? null;
  let at = "result";
  for (const seg of segments) {
    const parent = at;
    if (typeof seg === "string") {
      at += `.${seg}`;
      if (!isObject(cur)) throw new DependencyError(`dependency ${q}: ${at}: ${parent} is not an object`);
      if (!Object.hasOwn(cur, seg)) throw new FieldNotFound(`dependency ${q}: ${at}: not found: no key ${JSON.stringify(seg)}`);
      cur = cur[seg];
    } else {
      at += `[${seg}]`;
      if (!Array.isArray(cur)) throw new DependencyError(`dependency ${q}: ${at}: ${parent} is not an array`);
      if (seg >= cur.length) throw new FieldNotFound(`dependency ${q}: ${at}: not found: index ${seg} out of range (${cur.length} items)`);
      cur = cur[seg] as unknown;
    }
  }
  return cur;
}
