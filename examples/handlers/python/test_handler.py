"""python3 -m unittest -v (in this directory): the shared webhook vectors, the helpers against the Go
helper vectors, and the steps."""

import json
import pathlib
import unittest

import handler
import tasker_helpers as th

VECTORS = pathlib.Path(__file__).resolve().parents[3] / "contracts" / "testdata" / "webhook-vectors.json"
HELPER_VECTORS = pathlib.Path(__file__).resolve().parents[1] / "testdata" / "helper-vectors.json"


class WebhookVectors(unittest.TestCase):
    def test_vectors(self):
        data = json.loads(VECTORS.read_text(encoding="utf-8"))
        self.assertEqual(data["tolerance_seconds"], handler.TOLERANCE_SECONDS)
        self.assertGreater(len(data["cases"]), 20)
        for case in data["cases"]:
            with self.subTest(case["name"]):
                body = case["body"].encode()
                try:
                    verifier = handler.Verifier(case["secrets"])
                except handler.WebhookError as e:
                    self.assertEqual(e.code, case["error"])
                    self.assertEqual("invalid_secret", case["error"])
                    continue
                if case.get("signed_by_secrets"):
                    self.assertEqual(verifier.sign(case["id"], case["timestamp"], body), case["signature_header"])
                headers = {"webhook-id": case["id"], "webhook-timestamp": case["timestamp"],
                           "webhook-signature": case["signature_header"]}
                try:
                    verifier.verify(headers, body, now=case["now"])
                    error = ""
                except handler.WebhookError as e:
                    error = e.code
                self.assertEqual(error, case["error"])
                self.assertEqual(error == "", case["valid"])


def envelope(callable_, attempts=1, context=None, deps=None):
    return {"event_id": "e1", "task": {"task_uuid": "t1", "context": context or {}},
            "step": {"step_uuid": "s1", "attempts": attempts, "inputs": {}},
            "step_definition": {"handler": {"callable": callable_}},
            "dependency_results": {k: {"success": True, "result": v} for k, v in (deps or {}).items()}}


ORDER = {"order": {"total": 125.5, "address": "1 Main St", "items": [{"sku": "kb-42", "quantity": 1}]}}


class Steps(unittest.TestCase):
    def test_charge_reads_context_and_dependency(self):
        res, status, _ = handler.run_step(envelope("order_fulfillment.charge", 1, ORDER, {"validate_order": {"valid": True}}))
        self.assertEqual((status, res["success"], res["result"]["amount"], res["step_uuid"]), (200, True, 125.5, "s1"))

    def test_reserve_stock_is_retryable_on_first_attempt(self):
        res, status, retry_after = handler.run_step(envelope("order_fulfillment.reserve_stock", 1))
        self.assertEqual((status, retry_after, res["error"]["retryable"]), (503, 1, True))
        res, status, _ = handler.run_step(envelope("order_fulfillment.reserve_stock", 2))
        self.assertEqual((status, res["success"]), (200, True))

    def test_ship_without_address_is_permanent(self):
        res, status, _ = handler.run_step(envelope("order_fulfillment.ship", 1, {"order": {}}))
        self.assertEqual((status, res["error"]["error_type"], res["error"]["retryable"]), (422, "no_address", False))


class HelperVectors(unittest.TestCase):
    """tasker_helpers agrees with Go's contracts package (examples/handlers/testdata/helper-vectors.json)."""

    v = json.loads(HELPER_VECTORS.read_text(encoding="utf-8"))

    def test_even_cursors_10_on_4(self):  # the example of contracts/README.md
        cursors = th.even_cursors(10, 4)
        self.assertEqual([c["batch_id"] for c in cursors], ["001", "002", "003", "004"])
        self.assertEqual([c["batch_size"] for c in cursors], [3, 3, 2, 2])
        self.assertEqual([(c["start_cursor"], c["end_cursor"]) for c in cursors], [(0, 3), (3, 6), (6, 8), (8, 10)])

    def test_batch_ids(self):
        for c in self.v["batch_ids"]:
            self.assertEqual(th.batch_id(c["n"]), c["id"])

    def test_cursors(self):
        for c in self.v["even_cursors"]:
            with self.subTest(even=(c["total"], c["workers"])):
                self.assertEqual(th.even_cursors(c["total"], c["workers"]), c["cursors"])
        for c in self.v["cursors_by_size"]:
            with self.subTest(by_size=(c["total"], c["size"])):
                self.assertEqual(th.cursors_by_size(c["total"], c["size"]), c["cursors"])

    def test_outcomes(self):
        build = {
            "create_steps": lambda c: th.create_steps(*c["step_names"]),
            "no_branches": lambda c: th.no_branches(),
            "create_batches": lambda c: th.create_batches(c["worker_template_name"],
                                                          th.even_cursors(c["total_items"], c["workers"]), c["total_items"]),
            "no_batches": lambda c: th.no_batches(),
        }
        for c in self.v["outcomes"]:
            with self.subTest(c["name"]):
                res = build[c["kind"]](c).result(c["extra"])
                self.assertIsInstance(res, th.StepResult)
                self.assertEqual(json.loads(json.dumps(res)), c["result"])

    def test_dependency_fields(self):
        env = {"dependency_results": self.v["dependency_results"]}
        errors = {"unknown_dependency": th.UnknownDependency, "dependency_failed": th.DependencyFailed,
                  "not_found": th.FieldNotFound}
        for c in self.v["dependency_fields"]:
            with self.subTest(step=c["step"], path=c["path"]):
                if "error" not in c:
                    self.assertEqual(th.dependency_field(env, c["step"], c["path"]), c["value"])
                    continue
                with self.assertRaises(th.DependencyError) as got:
                    th.dependency_field(env, c["step"], c["path"])
                if c["error"] in errors:
                    self.assertIsInstance(got.exception, errors[c["error"]])
                else:  # wrong_type, bad_path: none of the specific causes
                    self.assertNotIsInstance(got.exception, tuple(errors.values()))
                self.assertIn(repr(c["step"]), str(got.exception))

    def test_batch_workers(self):
        for c in self.v["batch_workers"]:
            with self.subTest(c["name"]):
                env = {"step": {"name": "w", "inputs": c["inputs"]}}
                if c.get("error"):
                    self.assertRaises(th.HelperError, th.batch_worker, env)
                    continue
                got = th.batch_worker(env)
                self.assertEqual(got, c["want"])
                if "int_range" in c:
                    self.assertEqual(list(th.int_range(got["cursor"])), c["int_range"])
                else:
                    self.assertRaises(ValueError, th.int_range, got["cursor"])

    def test_resume_from(self):
        for c in self.v["resume_from"]:
            with self.subTest(c["name"]):
                env = {"step": {"checkpoint": c["checkpoint"]}}
                if c.get("error"):
                    self.assertRaises(th.HelperError, th.resume_from, env)
                elif c.get("none"):
                    self.assertIsNone(th.resume_from(env))
                else:
                    cp = th.resume_from(env)
                    self.assertEqual(cp, c["want"])
                    if "int_cursor" in c:
                        self.assertEqual(th.int_cursor(cp), c["int_cursor"])
                    else:
                        self.assertRaises(ValueError, th.int_cursor, cp)

    def test_yields(self):
        for c in self.v["yields"]:
            res = th.yield_checkpoint(c["cursor"], c["items_processed"], c.get("accumulated_results"))
            self.assertEqual(json.loads(json.dumps(res)), c["result"])


class DynamicSteps(unittest.TestCase):
    def run_ok(self, env):
        res, status, _ = handler.run_step(env)
        self.assertEqual(status, 200, res)
        return res

    def test_route_by_amount(self):
        for amount, names in ((0, None), (500, ["auto_approve"]), (2000, ["manager_approval"]),
                              (7500, ["manager_approval", "finance_review"])):
            res = self.run_ok(envelope("approval.route", context={"request": {"id": "r", "amount": amount}}))
            outcome = res["result"]["decision_point_outcome"]
            self.assertEqual(outcome, {"type": "no_branches"} if names is None else {"type": "create_steps", "step_names": names})
            self.assertEqual(res["result"]["amount"], amount)

    def test_finalize_sees_the_branches_taken(self):
        deps = {"route_approval": {"amount": 30000}, "manager_approval": {"approved": True},
                "finance_review": {"approved": False}}
        res = self.run_ok(envelope("approval.finalize", deps=deps))
        self.assertEqual(res["result"], {"decision": "rejected", "approvals": ["manager_approval", "finance_review"], "amount": 30000})
        res = self.run_ok(envelope("approval.finalize", deps={"route_approval": {"amount": 0}}))
        self.assertEqual(res["result"]["decision"], "nothing_to_approve")

    def test_etl(self):
        ctx = {"etl": {"id": "e", "rows": 10, "workers": 4, "checkpoint_every": 2}}
        res = self.run_ok(envelope("etl.analyze", context=ctx))
        self.assertEqual(res["result"]["batch_processing_outcome"]["cursor_configs"], th.even_cursors(10, 4))
        env = envelope("etl.transform", context=ctx)
        env["step"]["inputs"] = {"cursor": th.even_cursors(10, 4)[0]}  # rows 0, 1, 2
        res = self.run_ok(env)
        self.assertEqual((res["status"], res["checkpoint"]["cursor"], res["checkpoint"]["items_processed"]), ("yielded", 2, 2))
        env["step"]["checkpoint"] = res["checkpoint"]
        res = self.run_ok(env)
        want = sum(handler.row_amount(i) for i in range(3))
        self.assertEqual(res["result"], {"batch_id": "001", "start": 0, "end": 3, "rows": 3, "amount_cents": want, "calls": 2})
        deps = {"analyze_rows": {"rows": 3}, "transform_rows_001": res["result"]}
        res = self.run_ok(envelope("etl.aggregate", deps=deps))
        self.assertEqual(res["result"], {"workers": 1, "failed_workers": 0, "rows": 3, "rows_expected": 3, "amount_cents": want})


if __name__ == "__main__":
    unittest.main()
