"""Dynamic-workflow helpers for handler authors: Python versions of the Go helpers in tasker-runner's
contracts package (outcome.go, cursor.go, dependency.go, checkpoint.go; contracts/README.md, "Dynamic
workflows"), with the same names in snake_case and the same results. test_handler.py checks them against
examples/handlers/testdata/helper-vectors.json, which Go computes.

    create_steps("manager_approval").result({"amount": 7500})    # a decision
    no_branches().result()
    create_batches("process", even_cursors(total, 8), total).result()   # a batch; cursors_by_size(total, 1000)
    no_batches().result()
    inputs = batch_worker(env); start, end = int_range(inputs["cursor"])
    cp = resume_from(env)                                          # None on the first call; int_cursor(cp)
    return yield_checkpoint(cursor, items_processed, accumulated_results)
    dependency_field(env, "fetch_order", "items[2].sku")

A step function returns a StepResult (what .result() and yield_checkpoint() build) to answer with it as
it is, rather than have its return value wrapped in a completed result.
"""

import re


class StepResult(dict):
    """A whole StepExecutionResult, sent as it is."""


class HelperError(ValueError):
    """A document that is not what the contract says; field names the JSON path of the culprit."""

    def __init__(self, field, problem):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


# --- outcomes (outcome.go) ---

class _Outcome(dict):
    key = ""

    def result(self, extra=None):
        """A successful StepResult whose result is {<outcome key>: self} merged with extra (the outcome's
        own key wins)."""
        return StepResult(success=True, status="completed", result={**(extra or {}), self.key: dict(self)})


class DecisionPointOutcome(_Outcome):
    key = "decision_point_outcome"


class BatchProcessingOutcome(_Outcome):
    key = "batch_processing_outcome"


def create_steps(*step_names):
    """The decision that creates the named steps (each must depend on the decision step)."""
    return DecisionPointOutcome(type="create_steps", step_names=list(step_names))


def no_branches():
    """The decision that creates no step."""
    return DecisionPointOutcome(type="no_branches")


def create_batches(worker_template_name, cursor_configs, total_items):
    """One worker step per cursor config, named <worker_template_name>_<batch_id>."""
    outcome = BatchProcessingOutcome(type="create_batches", worker_template_name=worker_template_name,
                                     worker_count=len(cursor_configs), cursor_configs=list(cursor_configs),
                                     total_items=total_items)
    if not total_items:
        del outcome["total_items"]  # as Go's omitempty
    if not cursor_configs:
        del outcome["worker_count"], outcome["cursor_configs"]
    return outcome


def no_batches():
    """The batch outcome that creates no worker (the convergence step still runs)."""
    return BatchProcessingOutcome(type="no_batches")


# --- cursors (cursor.go) ---

def batch_id(n):
    """The id of the n-th batch (1-based): "001", "002", ..., "999", "1000"."""
    return f"{n:03d}"


def new_cursor_config(n, start, end, batch_size):
    """The cursor config of the n-th batch, for any JSON cursors (timestamps, keys, page tokens)."""
    return {"batch_id": batch_id(n), "start_cursor": start, "end_cursor": end, "batch_size": batch_size}


def even_cursors(total, workers):
    """Splits [0, total) into `workers` contiguous ranges whose sizes differ by at most one, larger first
    (10 on 4: 3, 3, 2, 2); never more ranges than items; [] when total <= 0."""
    if total <= 0:
        return []
    w = min(max(workers, 1), total)
    base, extra = divmod(total, w)
    out, start = [], 0
    for i in range(w):
        size = base + (1 if i < extra else 0)
        out.append(new_cursor_config(i + 1, start, start + size, size))
        start += size
    return out


def cursors_by_size(total, size):
    """Splits [0, total) into ranges of `size` items, the last one shorter; size < 1 means one range."""
    if total <= 0:
        return []
    if size < 1 or size > total:
        size = total
    return [new_cursor_config(n + 1, start, min(start + size, total), min(start + size, total) - start)
            for n, start in enumerate(range(0, total, size))]


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def int_range(cursor):
    """(start, end) of an integer cursor config; ValueError unless both are integers and end >= start."""
    start, end = cursor.get("start_cursor"), cursor.get("end_cursor")
    if not (_is_int(start) and _is_int(end)):
        raise ValueError(f"batch {cursor.get('batch_id')!r}: start_cursor and end_cursor must be integers")
    if end < start:
        raise ValueError(f"batch {cursor.get('batch_id')!r}: end_cursor {end} is before start_cursor {start}")
    return start, end


# --- a batch worker's inputs (cursor.go: BatchWorker) ---

def _string(at, v):
    if not isinstance(v, str):
        raise HelperError(at, "missing" if v is None else "not a string")
    return v


def _count(at, v):
    if not _is_int(v) or v < 0:
        raise HelperError(at, f"not a non-negative integer (got {v!r})")
    return v


def _cursor(at, raw):
    if not isinstance(raw, dict):
        raise HelperError(at, "not an object")
    bid = _string(at + ".batch_id", raw.get("batch_id"))
    if not bid:
        raise HelperError(at + ".batch_id", "empty")
    for f in ("start_cursor", "end_cursor"):
        if f not in raw:
            raise HelperError(f"{at}.{f}", "missing")
    size = raw.get("batch_size")
    return {"batch_id": bid, "start_cursor": raw["start_cursor"], "end_cursor": raw["end_cursor"],
            "batch_size": 0 if size is None else _count(at + ".batch_size", size)}


def batch_worker(env):
    """step.inputs of a batch worker: {"cursor", "batch_metadata": {"cursor_field", "failure_strategy"},
    "is_no_op"}, defaults filled in; the flat form (the cursor config itself) too. HelperError otherwise."""
    at, inputs = "step.inputs", env["step"].get("inputs")
    if inputs is None:
        raise HelperError(at, f"empty: step {env['step'].get('name')!r} is not a batch worker")
    if not isinstance(inputs, dict):
        raise HelperError(at, "not an object")
    meta = {"cursor_field": "", "failure_strategy": ""}
    if "cursor" not in inputs:
        if "batch_id" not in inputs:
            raise HelperError(at + ".cursor", f"missing: step {env['step'].get('name')!r} is not a batch worker")
        return {"cursor": _cursor(at, inputs), "batch_metadata": meta, "is_no_op": False}
    cursor = _cursor(at + ".cursor", inputs["cursor"])
    raw_meta = inputs.get("batch_metadata")
    if raw_meta is not None:
        if not isinstance(raw_meta, dict):
            raise HelperError(at + ".batch_metadata", "not an object")
        for f in meta:
            if raw_meta.get(f) is not None:
                meta[f] = _string(f"{at}.batch_metadata.{f}", raw_meta[f])
    no_op = inputs.get("is_no_op")
    if no_op is not None and not isinstance(no_op, bool):
        raise HelperError(at + ".is_no_op", "not a boolean")
    return {"cursor": cursor, "batch_metadata": meta, "is_no_op": bool(no_op)}


# --- checkpoints (checkpoint.go) ---

def yield_checkpoint(cursor, items_processed, accumulated_results=None):
    """The result that saves a checkpoint and asks to be called again at once, without using an attempt."""
    checkpoint = {"cursor": cursor, "items_processed": items_processed}
    if accumulated_results is not None:
        checkpoint["accumulated_results"] = accumulated_results
    return StepResult(success=False, status="yielded", checkpoint=checkpoint)


def resume_from(env):
    """The checkpoint the step last yielded, {"cursor", "items_processed", ["accumulated_results"]}, or None
    on the first call; HelperError when it is malformed."""
    at, cp = "step.checkpoint", env["step"].get("checkpoint")
    if cp is None:
        return None
    if not isinstance(cp, dict):
        raise HelperError(at, "not an object")
    out = {"cursor": cp.get("cursor"), "items_processed": 0}
    if cp.get("items_processed") is not None:
        out["items_processed"] = _count(at + ".items_processed", cp["items_processed"])
    if "accumulated_results" in cp:
        out["accumulated_results"] = cp["accumulated_results"]
    return out


def int_cursor(checkpoint):
    """The checkpoint's cursor as an integer; ValueError when it is not one."""
    if not _is_int(checkpoint.get("cursor")):
        raise ValueError(f"checkpoint cursor {checkpoint.get('cursor')!r} is not an integer")
    return checkpoint["cursor"]


# --- dependency results (dependency.go) ---

class DependencyError(LookupError):
    """Reading a dependency's field failed; the subclasses tell the causes apart."""


class UnknownDependency(DependencyError):
    """Not in dependency_results (not an ancestor, or not completed)."""


class DependencyFailed(DependencyError):
    """The dependency's result reports a failure."""


class FieldNotFound(DependencyError):
    """A key is missing or an index out of range: `except FieldNotFound` for an optional field."""


_PART = re.compile(r"([^\[\]]*)((?:\[\d+\])*)")


def _parse_path(path):
    segments = []
    if path == "":
        return segments
    for i, part in enumerate(path.split(".")):
        m = _PART.fullmatch(part)
        if not m:
            raise DependencyError(f"path {path!r}: bad segment {part!r}: want key[n][m]... with n a non-negative integer")
        key, indices = m.groups()
        if not key and (i > 0 or not indices):
            raise DependencyError(f"path {path!r}: empty key")
        if key:
            segments.append(key)
        segments.extend(int(n) for n in re.findall(r"\d+", indices))
    return segments


def dependency_field(env, step, path=""):
    """The value at path ("order.total", "items[2].sku", "[0]", "": all) in the result of dependency `step`.
    Raises UnknownDependency, DependencyFailed, FieldNotFound, or DependencyError (a bad path, or a key of
    something that is not an object, an index of something that is not an array)."""
    try:
        segments = _parse_path(path)
    except DependencyError as e:
        raise DependencyError(f"dependency {step!r}: {e}") from None
    dep = env.get("dependency_results", {}).get(step)
    if dep is None:
        raise UnknownDependency(f"dependency {step!r}: unknown dependency (dependency_results has {sorted(env.get('dependency_results', {}))})")
    if not dep.get("success") or dep.get("status") == "failed":
        raise DependencyFailed(f"dependency {step!r}: dependency failed: {(dep.get('error') or {}).get('message', 'no error given')}")
    cur, at = dep.get("result"), "result"
    for seg in segments:
        parent = at
        if isinstance(seg, str):
            at += "." + seg
            if not isinstance(cur, dict):
                raise DependencyError(f"dependency {step!r}: {at}: {parent} is not an object")
            if seg not in cur:
                raise FieldNotFound(f"dependency {step!r}: {at}: not found: no key {seg!r}")
            cur = cur[seg]
        else:
            at += f"[{seg}]"
            if not isinstance(cur, list):
                raise DependencyError(f"dependency {step!r}: {at}: {parent} is not an array")
            if seg >= len(cur):
                raise FieldNotFound(f"dependency {step!r}: {at}: not found: index {seg} out of range ({len(cur)} items)")
            cur = cur[seg]
    return cur
