"""tasker-runner example handler service in Python, standard library only.

Runs the steps of the example workflows (examples/templates; see README.md and contracts/README.md):

    PORT=8092 TASKER_WEBHOOK_SECRET=whsec_... python3 handler.py

POST / or POST /<callable> runs a step envelope, or a batch {"steps": [...]}; GET /health answers ok.
With TASKER_WEBHOOK_SECRET set (several space-separated during a rotation) every request must carry a
valid Standard Webhooks signature. SIGTERM or SIGINT stops the server.
"""

import base64
import hashlib
import hmac
import json
import logging
import os
import signal
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import tasker_helpers as th

MAX_BODY_BYTES = 4 << 20  # larger requests get 413, as in the Go example
DISCARD_LIMIT = 64 << 20  # an unread body up to this size is discarded before an error answer, or the connection closed
TOLERANCE_SECONDS = 300
log = logging.getLogger("python-handler")


# --- Standard Webhooks verification (checked against contracts/testdata/webhook-vectors.json) ---

class WebhookError(Exception):
    """code is one of the vector file's error codes, e.g. "invalid_signature"."""

    def __init__(self, code, detail=""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


class Verifier:
    def __init__(self, secrets):
        if not secrets:
            raise WebhookError("invalid_secret", "no secret given")
        self.keys = []
        for i, secret in enumerate(secrets, 1):
            b64 = secret.removeprefix("whsec_")
            try:
                key = base64.b64decode(b64, validate=True)
            except ValueError:
                key = b""
            # strict: the prefix, canonical standard base64, 24 to 64 bytes
            if b64 == secret or base64.b64encode(key).decode() != b64 or not 24 <= len(key) <= 64:
                raise WebhookError("invalid_secret", f"secret {i} is not whsec_ and the base64 of 24 to 64 bytes")
            self.keys.append(key)

    def sign(self, msg_id, timestamp, body):
        """The webhook-signature value: one v1 entry per secret, in order."""
        payload = f"{msg_id}.{timestamp}.".encode() + body
        return " ".join("v1," + base64.b64encode(hmac.digest(k, payload, hashlib.sha256)).decode() for k in self.keys)

    def verify(self, headers, body, now=None):
        """Raises WebhookError unless headers (webhook-id, -timestamp, -signature) sign body."""
        msg_id, ts, sigs = (headers.get(h) or "" for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
        if not (msg_id and ts and sigs):
            raise WebhookError("missing_headers")
        if not (ts.isascii() and ts.isdigit() and len(ts) <= 18):
            raise WebhookError("invalid_timestamp")
        now = int(time.time()) if now is None else now
        if int(ts) < now - TOLERANCE_SECONDS:
            raise WebhookError("timestamp_too_old")
        if int(ts) > now + TOLERANCE_SECONDS:
            raise WebhookError("timestamp_too_new")
        payload = f"{msg_id}.{ts}.".encode() + body
        wanted = [hmac.digest(k, payload, hashlib.sha256) for k in self.keys]
        for entry in sigs.split():
            version, _, b64 = entry.partition(",")
            if version != "v1" or len(b64) != 44:
                continue  # another scheme (v1a, v2) or not a signature
            try:
                got = base64.b64decode(b64, validate=True)
            except ValueError:
                continue
            if any(hmac.compare_digest(got, w) for w in wanted):
                return
        raise WebhookError("invalid_signature")


# --- the steps ---

class StepFailure(Exception):
    """Fails a step: retryable False makes it permanent; status (503, 422...) is the HTTP status of a
    single-step answer; retry_after (seconds) asks the runner to wait before the next attempt."""

    def __init__(self, error_type, message, retryable=False, status=None, retry_after=None):
        super().__init__(message)
        self.error_type, self.message, self.retryable = error_type, message, retryable
        self.status, self.retry_after = status, retry_after


def read_order(env):
    order = env["task"].get("context", {}).get("order", {})
    if not isinstance(order, dict) or not isinstance(order.get("total", 0), (int, float)) \
            or not isinstance(order.get("items", []), list) or not isinstance(order.get("address", ""), str):
        raise StepFailure("invalid_context", "the task context is not an order")
    return order


def validate_order(env):
    order = read_order(env)
    problems = []
    if not order.get("total", 0) > 0:
        problems.append("order.total must be positive")
    if not order.get("items"):
        problems.append("order.items is empty")
    return {"valid": not problems, "problems": problems, "total": order.get("total", 0)}


def charge(env):
    order = read_order(env)
    validation = env["dependency_results"].get("validate_order", {}).get("result")
    if not (isinstance(validation, dict) and validation.get("valid") is True):
        raise StepFailure("order_invalid", "validate_order did not find the order valid")
    if order.get("total", 0) > 10_000:
        raise StepFailure("card_declined", f"card declined for {order['total']:.2f}")  # business failure, in a 200
    # the step_uuid is the same on every attempt: charging twice is charging once
    return {"charge_id": "ch_" + env["step"]["step_uuid"], "amount": order.get("total", 0),
            "currency": order.get("currency") or "EUR"}


def reserve_stock(env):
    if env["step"]["attempts"] < 2:  # a retryable failure: 503 with Retry-After
        raise StepFailure("warehouse_busy", "the warehouse is busy, try again shortly",
                          retryable=True, status=503, retry_after=1)
    return {"reservation_id": "rsv_" + env["step"]["step_uuid"], "attempt": env["step"]["attempts"]}


def ship(env):
    order = read_order(env)
    if not order.get("address"):  # a permanent failure: 422, retryable false
        raise StepFailure("no_address", "order.address is missing", status=422)
    return {"tracking": "trk_" + env["task"]["task_uuid"], "address": order["address"]}


# --- the approval workflow (a decision point) and the batch ETL (batches, checkpoints) ---

APPROVALS = ("auto_approve", "manager_approval", "finance_review")  # the decision's branches, in template order
AUTO_APPROVE_BELOW, FINANCE_REVIEW_FROM, FINANCE_REFUSE_ABOVE = 1000, 5000, 25_000


def route(env):
    """The decision: which approvals the request's amount needs (none at 0 or less)."""
    amount = env["task"]["context"].get("request", {}).get("amount")
    if not isinstance(amount, (int, float)) or isinstance(amount, bool):
        raise StepFailure("invalid_context", "the task context has no request.amount")
    if amount <= 0:
        return th.no_branches().result({"amount": amount})
    if amount < AUTO_APPROVE_BELOW:
        return th.create_steps("auto_approve").result({"amount": amount})
    if amount < FINANCE_REVIEW_FROM:
        return th.create_steps("manager_approval").result({"amount": amount})
    return th.create_steps("manager_approval", "finance_review").result({"amount": amount})


def approve(approver, limit=None):
    def step(env):
        amount = route_amount(env)
        out = {"approved": limit is None or amount <= limit, "approver": approver, "amount": amount}
        if not out["approved"]:
            out["reason"] = f"over the {approver} limit of {limit}"
        return out
    return step


def route_amount(env):
    try:
        return th.dependency_field(env, "route_approval", "amount")
    except th.DependencyError as e:
        raise StepFailure("missing_dependency", str(e))


def finalize(env):
    """The convergence: runs once, after whichever approvals were created."""
    amount, taken, decision = route_amount(env), [], "nothing_to_approve"
    for name in APPROVALS:
        if name not in env["dependency_results"]:
            continue  # a branch not taken was never created
        taken.append(name)
        try:
            approved = th.dependency_field(env, name, "approved") is True
        except th.DependencyError:
            approved = False
        decision = "rejected" if decision == "rejected" or not approved else "approved"
    return {"decision": decision, "approvals": taken, "amount": amount}


def read_etl(env):
    etl = env["task"]["context"].get("etl")
    if not isinstance(etl, dict) or not isinstance(etl.get("rows"), int) or etl["rows"] < 0:
        raise StepFailure("invalid_context", "the task context has no etl.rows")
    return etl["rows"], max(etl.get("workers") or 4, 1), max(etl.get("checkpoint_every") or 1000, 1)


def row_amount(row_id):
    """The generated row's amount in cents: from its id alone, so every language agrees."""
    return row_id * 7919 % 10007


def analyze(env):
    """The batchable step: even cursor ranges over the rows, one transform_rows worker each."""
    rows, workers, _ = read_etl(env)
    if rows == 0:
        return th.no_batches().result({"rows": 0})
    return th.create_batches("transform_rows", th.even_cursors(rows, workers), rows).result({"rows": rows})


def transform(env):
    """A batch worker: checkpoint_every rows per call, a checkpoint after each call but the last."""
    _, _, every = read_etl(env)
    try:
        inputs = th.batch_worker(env)
        start, end = th.int_range(inputs["cursor"])
        cp = th.resume_from(env)
        pos = th.int_cursor(cp) if cp else start
        acc = cp["accumulated_results"] if cp else {"rows": 0, "amount_cents": 0, "calls": 0}
    except (ValueError, KeyError, TypeError) as e:
        raise StepFailure("invalid_inputs", str(e))
    stop = min(pos + every, end)
    acc = {"rows": acc["rows"] + stop - pos, "calls": acc["calls"] + 1,
           "amount_cents": acc["amount_cents"] + sum(row_amount(i) for i in range(pos, stop))}
    if stop < end:
        return th.yield_checkpoint(stop, stop - start, acc)
    return {"batch_id": inputs["cursor"]["batch_id"], "start": start, "end": end, **acc}


def aggregate(env):
    """The convergence: adds up every worker's result (a failed worker shows as success false)."""
    try:
        expected = th.dependency_field(env, "analyze_rows", "rows")
    except th.DependencyError as e:
        raise StepFailure("missing_dependency", str(e))
    out = {"workers": 0, "failed_workers": 0, "rows": 0, "rows_expected": expected, "amount_cents": 0}
    for name in env["dependency_results"]:
        if not name.startswith("transform_rows_"):
            continue
        try:
            rows, cents = (th.dependency_field(env, name, f) for f in ("rows", "amount_cents"))
        except th.DependencyFailed:
            out["failed_workers"] += 1
            continue
        except th.FieldNotFound:
            continue  # the placeholder worker of no_batches: {"no_op": true}
        out["workers"], out["rows"], out["amount_cents"] = out["workers"] + 1, out["rows"] + rows, out["amount_cents"] + cents
    return out


def echo(env):
    return {"step_uuid": env["step"]["step_uuid"], "attempt": env["step"]["attempts"], "inputs": env["step"].get("inputs")}


STEPS = {
    "order_fulfillment.validate_order": validate_order,
    "order_fulfillment.charge": charge,
    "order_fulfillment.reserve_stock": reserve_stock,
    "order_fulfillment.ship": ship,
    "approval.route": route,
    "approval.auto_approve": approve("policy", AUTO_APPROVE_BELOW),
    "approval.manager_approval": approve("manager"),
    "approval.finance_review": approve("finance", FINANCE_REFUSE_ABOVE),
    "approval.finalize": finalize,
    "etl.analyze": analyze,
    "etl.transform": transform,
    "etl.aggregate": aggregate,
    "conformance.echo": echo,
}


# --- results and the HTTP service ---

def failed(f):
    error = {"message": f.message, "error_type": f.error_type, "retryable": f.retryable}
    result = {"success": False, "status": "failed", "error": error}
    if f.status:
        error["status_code"] = f.status
    if f.retry_after:
        result["orchestration_metadata"] = {"backoff_hint": {"delay_seconds": f.retry_after, "backoff_type": "server_requested"}}
    return result


def run_step(env):
    """Runs one envelope: returns (StepExecutionResult, HTTP status, Retry-After seconds or None)."""
    callable_ = env["step_definition"]["handler"].get("callable", "")
    step = STEPS.get(callable_)
    if step is None:
        f = StepFailure("handler_not_found", f"this service has no step {callable_!r}", status=404)
        return {"step_uuid": env["step"].get("step_uuid", ""), **failed(f)}, 404, None
    start = time.monotonic()
    try:
        value = step(env)  # a th.StepResult (an outcome, a checkpoint) is the answer as it is
        result = dict(value) if isinstance(value, th.StepResult) else {"success": True, "status": "completed", "result": value}
        status, retry_after = 200, None
    except Exception as e:  # noqa: BLE001 - any other error is a retryable handler_error
        f = e if isinstance(e, StepFailure) else StepFailure("handler_error", str(e), retryable=True)
        result, status, retry_after = failed(f), f.status or 200, f.retry_after
    log.info("%s %s step_uuid=%s attempt=%s", callable_, result["status"], env["step"].get("step_uuid"), env["step"].get("attempts"))
    result["metadata"] = {"execution_time_ms": round((time.monotonic() - start) * 1000), "handler": "examples/handlers/python"}
    return {"step_uuid": env["step"].get("step_uuid", ""), **result}, status, retry_after


def deadline_passed(headers):
    """Whether the request's Tasker-Deadline (RFC 3339) has passed: the runner has stopped waiting."""
    try:
        deadline = datetime.fromisoformat((headers.get("Tasker-Deadline") or "").replace("Z", "+00:00"))
    except ValueError:
        return False
    return deadline.tzinfo is not None and deadline <= datetime.now(timezone.utc)


def too_late(env):
    """The answer for a step whose deadline passed: a retryable failure, without running it."""
    f = StepFailure("deadline_exceeded", "Tasker-Deadline passed before the step started", retryable=True)
    return {"step_uuid": env["step"].get("step_uuid", ""), **failed(f)}


def is_envelope(env):
    return isinstance(env, dict) and all(isinstance(env.get(k), dict) for k in ("task", "step", "step_definition")) \
        and isinstance(env.setdefault("dependency_results", {}), dict) and isinstance(env["task"].setdefault("context", {}), dict) \
        and isinstance(env["step_definition"].setdefault("handler", {}), dict)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the runner's client expects
    # Headers and body go out in separate writes; with Nagle's algorithm on,
    # the second waits for the client's delayed ACK (~40 ms per call on a
    # kept-alive connection).
    disable_nagle_algorithm = True
    verifier = None  # a Verifier when TASKER_WEBHOOK_SECRET is set

    def do_GET(self):
        if self.path == "/health":
            return self.reply(200, b"ok\n", "text/plain")
        self.problem(404, "no such resource")

    def do_POST(self):
        if self.headers.get("Transfer-Encoding"):
            return self.problem(411, "send the body with a Content-Length", unread=-1)  # http.server reads no chunks
        length = self.headers.get("Content-Length") or "0"
        if not (length.isascii() and length.isdigit()):
            return self.problem(400, "bad Content-Length", unread=-1)
        length = int(length)
        if self.verifier and not all(self.headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")):
            return self.problem(401, "webhook: missing signature headers", unread=length)  # before reading the body
        if length > MAX_BODY_BYTES:
            return self.problem(413, f"request body larger than {MAX_BODY_BYTES} bytes", unread=length)
        body = self.rfile.read(length)
        if self.verifier:
            try:
                self.verifier.verify(self.headers, body)
            except WebhookError as e:
                return self.problem(401, f"webhook: {e}")
        try:
            req = json.loads(body)
        except (ValueError, RecursionError):
            req = None
        late = deadline_passed(self.headers)  # work past Tasker-Deadline is wasted: the step comes again
        if isinstance(req, dict) and isinstance(req.get("steps"), list) and all(is_envelope(s) for s in req["steps"]):
            return self.send_json(200, {"results": [too_late(env) if late else run_step(env)[0] for env in req["steps"]]})
        if not is_envelope(req):
            return self.send_json(400, failed(StepFailure("bad_request", "not a step envelope or a batch")))
        if late:
            return self.send_json(200, too_late(req))
        result, status, retry_after = run_step(req)
        self.send_json(status, result, {"Retry-After": str(retry_after)} if retry_after else {})

    def problem(self, status, detail, unread=0):
        """Answers with an RFC 9457 problem. An unread body (unread bytes; -1: unknown) is discarded, so that
        the client still sending it reads the answer, or past DISCARD_LIMIT the connection is closed."""
        while 0 < unread <= DISCARD_LIMIT:
            chunk = self.rfile.read(min(unread, 1 << 16))
            unread = unread - len(chunk) if chunk else 0
        headers = {"Connection": "close"} if unread else {}
        self.send_json(status, {"type": "about:blank", "status": status, "detail": detail}, headers, "application/problem+json")

    def send_json(self, status, value, headers=None, content_type="application/json"):
        self.reply(status, json.dumps(value).encode(), content_type, headers)

    def reply(self, status, body, content_type, headers=None):
        self.send_response(status)
        for name, value in {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        log.debug(fmt, *args)


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    secrets = os.environ.get("TASKER_WEBHOOK_SECRET", "").split()
    try:
        Handler.verifier = Verifier(secrets) if secrets else None
    except WebhookError:
        raise SystemExit("python-handler: TASKER_WEBHOOK_SECRET must be whsec_ and the base64 of 24 to 64 bytes")
    server = ThreadingHTTPServer((os.environ.get("HOST", ""), int(os.environ.get("PORT", "8092"))), Handler)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    log.info("listening on http://%s:%d (signed: %s)", host or "0.0.0.0", port, "yes" if secrets else "no")
    stop.wait()
    log.info("shutting down")
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
