// npm test: the dynamic-workflow helpers (helpers.ts) against the Go helper vectors
// (examples/handlers/testdata/helper-vectors.json), and the approval and batch ETL steps.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { rowAmount, runStep, type StepEnvelope, type StepResult } from "./handler.js";
import * as th from "./helpers.js";

interface Vectors {
  batch_ids: { n: number; id: string }[];
  even_cursors: { total: number; workers: number; cursors: th.CursorConfig[] }[];
  cursors_by_size: { total: number; size: number; cursors: th.CursorConfig[] }[];
  outcomes: { name: string; kind: string; step_names?: string[]; worker_template_name?: string; total_items?: number; workers?: number; extra: Record<string, unknown> | null; result: unknown }[];
  dependency_results: Record<string, StepResult>;
  dependency_fields: { step: string; path: string; value?: unknown; error?: string }[];
  batch_workers: { name: string; inputs: unknown; want?: unknown; int_range?: number[]; error?: boolean }[];
  resume_from: { name: string; checkpoint: unknown; none?: boolean; want?: unknown; int_cursor?: number; error?: boolean }[];
  yields: { cursor: unknown; items_processed: number; accumulated_results?: unknown; result: unknown }[];
}

// dist/helpers.test.js -> <repo>/examples/handlers/testdata
const v = JSON.parse(readFileSync(new URL("../../testdata/helper-vectors.json", import.meta.url), "utf8")) as Vectors;
const roundTrip = (x: unknown): unknown => JSON.parse(JSON.stringify(x));
const worker = (inputs: unknown, checkpoint: unknown = null): StepEnvelope =>
  ({ event_id: "e", task: { task_uuid: "t", context: {} }, step: { step_uuid: "s", name: "w", attempts: 1, inputs, checkpoint },
    step_definition: { handler: { callable: "x" } }, dependency_results: {} });

describe("helpers agree with Go", () => {
  test("evenCursors(10, 4): sizes 3, 3, 2, 2, ids 001..004", () => {
    const cursors = th.evenCursors(10, 4);
    assert.deepEqual(cursors.map((c) => c.batch_id), ["001", "002", "003", "004"]);
    assert.deepEqual(cursors.map((c) => c.batch_size), [3, 3, 2, 2]);
    assert.deepEqual(cursors.map(th.intRange), [[0, 3], [3, 6], [6, 8], [8, 10]]);
  });
  test("batch ids", () => {
    for (const c of v.batch_ids) assert.equal(th.batchId(c.n), c.id);
  });
  test("cursors", () => {
    for (const c of v.even_cursors) assert.deepEqual(th.evenCursors(c.total, c.workers), c.cursors, JSON.stringify(c));
    for (const c of v.cursors_by_size) assert.deepEqual(th.cursorsBySize(c.total, c.size), c.cursors, JSON.stringify(c));
  });
  test("outcomes", () => {
    for (const c of v.outcomes) {
      const outcome = c.kind === "create_steps" ? th.createSteps(...(c.step_names ?? []))
        : c.kind === "no_branches" ? th.noBranches()
          : c.kind === "create_batches" ? th.createBatches(c.worker_template_name ?? "", th.evenCursors(c.total_items ?? 0, c.workers ?? 0), c.total_items ?? 0)
            : th.noBatches();
      const res = outcome.result(c.extra);
      assert.ok(res instanceof th.Answer);
      assert.deepEqual(roundTrip(res), c.result, c.name);
    }
  });
  test("dependency fields", () => {
    const env = { dependency_results: v.dependency_results };
    const causes: Record<string, typeof th.DependencyError> = {
      unknown_dependency: th.UnknownDependency, dependency_failed: th.DependencyFailed, not_found: th.FieldNotFound,
    };
    for (const c of v.dependency_fields) {
      const what = JSON.stringify(c);
      if (c.error === undefined) {
        assert.deepEqual(th.dependencyField(env, c.step, c.path), c.value, what);
        continue;
      }
      assert.throws(() => th.dependencyField(env, c.step, c.path), (e: unknown) => {
        const cause = causes[c.error ?? ""];
        return cause ? e instanceof cause : (e as Error).constructor === th.DependencyError; // wrong_type, bad_path
      }, what);
    }
  });
  test("batch worker inputs", () => {
    for (const c of v.batch_workers) {
      if (c.error) {
        assert.throws(() => th.batchWorker(worker(c.inputs)), th.HelperError, c.name);
        continue;
      }
      const got = th.batchWorker(worker(c.inputs));
      assert.deepEqual(got, c.want, c.name);
      if (c.int_range) assert.deepEqual(th.intRange(got.cursor), c.int_range, c.name);
      else assert.throws(() => th.intRange(got.cursor), Error, c.name);
    }
  });
  test("resume from a checkpoint", () => {
    for (const c of v.resume_from) {
      const env = worker({}, c.checkpoint);
      if (c.error) assert.throws(() => th.resumeFrom(env), th.HelperError, c.name);
      else if (c.none) assert.equal(th.resumeFrom(env), null, c.name);
      else {
        const cp = th.resumeFrom(env);
        assert.deepEqual(cp, c.want, c.name);
        if (c.int_cursor !== undefined) assert.equal(th.intCursor(cp!), c.int_cursor);
        else assert.throws(() => th.intCursor(cp!), Error, c.name);
      }
    }
  });
  test("yield a checkpoint", () => {
    for (const c of v.yields) assert.deepEqual(roundTrip(th.yieldCheckpoint(c.cursor, c.items_processed, c.accumulated_results)), c.result);
  });
});

const envelope = (callable: string, context: Record<string, unknown> = {}, deps: Record<string, unknown> = {}): StepEnvelope => ({
  event_id: "e1",
  task: { task_uuid: "t1", context },
  step: { step_uuid: "s1", attempts: 1, inputs: {} },
  step_definition: { handler: { callable } },
  dependency_results: Object.fromEntries(Object.entries(deps).map(([k, r]) => [k, { success: true, result: r }])),
});

function runOK(env: StepEnvelope): StepResult {
  const { result, status } = runStep(env);
  assert.equal(status, 200, JSON.stringify(result));
  return roundTrip(result) as StepResult;
}

describe("approval and batch ETL steps", () => {
  test("route by amount", () => {
    for (const [amount, names] of [[0, null], [500, ["auto_approve"]], [2000, ["manager_approval"]], [7500, ["manager_approval", "finance_review"]]] as const) {
      const res = runOK(envelope("approval.route", { request: { id: "r", amount } })).result as Record<string, unknown>;
      assert.deepEqual(res["decision_point_outcome"], names ? { type: "create_steps", step_names: names } : { type: "no_branches" });
      assert.equal(res["amount"], amount);
    }
  });
  test("finalize sees the branches taken", () => {
    const deps = { route_approval: { amount: 30000 }, manager_approval: { approved: true }, finance_review: { approved: false } };
    assert.deepEqual(runOK(envelope("approval.finalize", {}, deps)).result,
      { decision: "rejected", approvals: ["manager_approval", "finance_review"], amount: 30000 });
    assert.equal((runOK(envelope("approval.finalize", {}, { route_approval: { amount: 0 } })).result as { decision: string }).decision, "nothing_to_approve");
  });
  test("etl: analyze, a worker yielding and resuming, aggregate", () => {
    const ctx = { etl: { id: "e", rows: 10, workers: 4, checkpoint_every: 2 } };
    const analyzed = runOK(envelope("etl.analyze", ctx)).result as { batch_processing_outcome: { cursor_configs: unknown } };
    assert.deepEqual(analyzed.batch_processing_outcome.cursor_configs, th.evenCursors(10, 4));
    const env = envelope("etl.transform", ctx);
    env.step.inputs = { cursor: th.evenCursors(10, 4)[0] }; // rows 0, 1, 2
    let res = runOK(env);
    assert.deepEqual([res.status, res.checkpoint?.cursor, res.checkpoint?.items_processed], ["yielded", 2, 2]);
    env.step.checkpoint = res.checkpoint;
    res = runOK(env);
    const want = rowAmount(0) + rowAmount(1) + rowAmount(2);
    assert.deepEqual(res.result, { batch_id: "001", start: 0, end: 3, rows: 3, amount_cents: want, calls: 2 });
    const agg = runOK(envelope("etl.aggregate", {}, { analyze_rows: { rows: 3 }, transform_rows_001: res.result }));
    assert.deepEqual(agg.result, { workers: 1, failed_workers: 0, rows: 3, rows_expected: 3, amount_cents: want });
  });
});
