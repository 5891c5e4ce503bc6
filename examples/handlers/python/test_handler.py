"""python3 -m unittest -v (in this directory): the shared webhook vectors and the steps."""

import json
import pathlib
import unittest

import handler

VECTORS = pathlib.Path(__file__).resolve().parents[3] / "contracts" / "testdata" / "webhook-vectors.json"


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


if __name__ == "__main__":
    unittest.main()
