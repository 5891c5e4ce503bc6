// npm test: the shared webhook vectors (contracts/testdata/webhook-vectors.json) and the steps.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { runStep, type StepEnvelope } from "./handler.js";
import { TOLERANCE_SECONDS, Verifier, WebhookError } from "./webhook.js";

interface Vector {
  name: string;
  secrets: string[];
  id: string;
  timestamp: string;
  now: number;
  body: string;
  signature_header: string;
  valid: boolean;
  error: string;
  signed_by_secrets?: boolean;
}

// dist/vectors.test.js -> <repo>/contracts/testdata
const file = new URL("../../../../contracts/testdata/webhook-vectors.json", import.meta.url);
const vectors = JSON.parse(readFileSync(file, "utf8")) as { tolerance_seconds: number; cases: Vector[] };

describe("webhook vectors", () => {
  test("tolerance", () => {
    assert.equal(vectors.tolerance_seconds, TOLERANCE_SECONDS);
    assert.ok(vectors.cases.length > 20);
  });
  for (const c of vectors.cases) {
    test(c.name, () => {
      let verifier: Verifier;
      try {
        verifier = new Verifier(c.secrets);
      } catch (e) {
        assert.ok(e instanceof WebhookError);
        assert.equal(e.code, c.error);
        assert.equal(c.error, "invalid_secret");
        return;
      }
      const body = Buffer.from(c.body, "utf8");
      if (c.signed_by_secrets) assert.equal(verifier.sign(c.id, c.timestamp, body), c.signature_header);
      const headers = { "webhook-id": c.id, "webhook-timestamp": c.timestamp, "webhook-signature": c.signature_header };
      let error = "";
      try {
        verifier.verify(headers, body, c.now);
      } catch (e) {
        assert.ok(e instanceof WebhookError);
        error = e.code;
      }
      assert.equal(error, c.error);
      assert.equal(error === "", c.valid);
    });
  }
});

const envelope = (callable: string, attempts = 1, context: Record<string, unknown> = {}, deps: Record<string, unknown> = {}): StepEnvelope => ({
  event_id: "e1",
  task: { task_uuid: "t1", context },
  step: { step_uuid: "s1", attempts, inputs: {} },
  step_definition: { handler: { callable } },
  dependency_results: Object.fromEntries(Object.entries(deps).map(([k, v]) => [k, { success: true, result: v }])),
});

const order = { order: { total: 125.5, address: "1 Main St", items: [{ sku: "kb-42", quantity: 1 }] } };

describe("steps", () => {
  test("charge reads the context and a dependency result", () => {
    const { result, status } = runStep(envelope("order_fulfillment.charge", 1, order, { validate_order: { valid: true } }));
    assert.equal(status, 200);
    assert.equal(result.step_uuid, "s1");
    assert.deepEqual(result.result, { charge_id: "ch_s1", amount: 125.5, currency: "EUR" });
  });
  test("reserve_stock is retryable on the first attempt", () => {
    const first = runStep(envelope("order_fulfillment.reserve_stock", 1));
    assert.equal(first.status, 503);
    assert.equal(first.retryAfter, 1);
    assert.equal(first.result.error?.retryable, true);
    assert.equal(runStep(envelope("order_fulfillment.reserve_stock", 2)).status, 200);
  });
  test("ship without an address is permanent", () => {
    const { result, status } = runStep(envelope("order_fulfillment.ship", 1, { order: {} }));
    assert.equal(status, 422);
    assert.equal(result.error?.error_type, "no_address");
    assert.equal(result.error?.retryable, false);
  });
});
