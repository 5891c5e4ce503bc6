# frozen_string_literal: true

# Dynamic-workflow helpers for handler authors: Ruby versions of the Go helpers in tasker-runner's contracts
# package (outcome.go, cursor.go, dependency.go, checkpoint.go; contracts/README.md, "Dynamic workflows"),
# with the same names in snake_case and the same results. test_handler.rb checks them against
# examples/handlers/testdata/helper-vectors.json, which Go computes.
#
#   TaskerHelpers.create_steps("manager_approval").result({ "amount" => 7500 })  # a decision
#   TaskerHelpers.no_branches.result
#   TaskerHelpers.create_batches("process", TaskerHelpers.even_cursors(total, 8), total).result  # cursors_by_size
#   TaskerHelpers.no_batches.result
#   inputs = TaskerHelpers.batch_worker(env); start, stop = TaskerHelpers.int_range(inputs["cursor"])
#   cp = TaskerHelpers.resume_from(env)             # nil on the first call; TaskerHelpers.int_cursor(cp)
#   TaskerHelpers.yield_checkpoint(cursor, items_processed, accumulated_results)
#   TaskerHelpers.dependency_field(env, "fetch_order", "items[2].sku")
#
# A step returns a StepResult (what #result and yield_checkpoint build) to answer with it as it is, rather
# than have its return value wrapped in a completed result. Keys are strings, as JSON.parse gives them.
module TaskerHelpers
  # A whole StepExecutionResult, sent as it is.
  class StepResult < Hash
    def self.build(fields) = new.update(fields)
  end

  # A document that is not what the contract says; field is the JSON path of the culprit.
  class HelperError < ArgumentError
    attr_reader :field

    def initialize(field, problem)
      super("#{field}: #{problem}")
      @field = field
    end
  end

  # --- outcomes (outcome.go) ---

  # An outcome: a Hash of its JSON fields that knows its key in the result.
  class Outcome < Hash
    attr_reader :key

    def initialize(key, fields)
      super()
      @key = key
      update(fields)
    end

    # A successful StepResult whose result is { key => self } merged with extra (the outcome's key wins).
    def result(extra = nil)
      StepResult.build("success" => true, "status" => "completed", "result" => (extra || {}).merge(key => to_h))
    end
  end

  # The decision that creates the named steps (each must depend on the decision step).
  def self.create_steps(*step_names)
    Outcome.new("decision_point_outcome", "type" => "create_steps", "step_names" => step_names)
  end

  # The decision that creates no step.
  def self.no_branches = Outcome.new("decision_point_outcome", "type" => "no_branches")

  # One worker step per cursor config, named <worker_template_name>_<batch_id>.
  def self.create_batches(worker_template_name, cursor_configs, total_items)
    fields = { "type" => "create_batches", "worker_template_name" => worker_template_name }
    fields.update("worker_count" => cursor_configs.size, "cursor_configs" => cursor_configs) unless cursor_configs.empty?
    fields["total_items"] = total_items unless total_items.zero? # as Go's omitempty
    Outcome.new("batch_processing_outcome", fields)
  end

  # The batch outcome that creates no worker (the convergence step still runs).
  def self.no_batches = Outcome.new("batch_processing_outcome", "type" => "no_batches")

  # --- cursors (cursor.go) ---

  # The id of the n-th batch (1-based): "001", "002", ..., "999", "1000".
  def self.batch_id(n) = format("%03d", n)

  # The cursor config of the n-th batch, for any JSON cursors (timestamps, keys, page tokens).
  def self.new_cursor_config(n, start, stop, batch_size)
    { "batch_id" => batch_id(n), "start_cursor" => start, "end_cursor" => stop, "batch_size" => batch_size }
  end

  # Splits [0, total) into `workers` contiguous ranges whose sizes differ by at most one, larger first
  # (10 on 4: 3, 3, 2, 2); never more ranges than items; [] when total <= 0.
  def self.even_cursors(total, workers)
    return [] if total <= 0

    w = [[workers, 1].max, total].min
    base, extra = total.divmod(w)
    start = 0
    (0...w).map do |i|
      size = base + (i < extra ? 1 : 0)
      new_cursor_config(i + 1, start, start + size, size).tap { start += size }
    end
  end

  # Splits [0, total) into ranges of `size` items, the last one shorter; size < 1 means one range.
  def self.cursors_by_size(total, size)
    return [] if total <= 0

    size = total if size < 1 || size > total
    (0...total).step(size).each_with_index.map do |start, i|
      stop = [start + size, total].min
      new_cursor_config(i + 1, start, stop, stop - start)
    end
  end

  # [start, end] of an integer cursor config; ArgumentError unless both are integers and end >= start.
  def self.int_range(cursor)
    start, stop = cursor.values_at("start_cursor", "end_cursor")
    raise ArgumentError, "batch #{cursor['batch_id'].inspect}: cursors must be integers" unless [start, stop].all?(Integer)
    raise ArgumentError, "batch #{cursor['batch_id'].inspect}: end_cursor #{stop} is before start_cursor #{start}" if stop < start

    [start, stop]
  end

  # --- a batch worker's inputs (cursor.go: BatchWorker) ---

  def self.string_field(at, value)
    raise HelperError.new(at, value.nil? ? "missing" : "not a string") unless value.is_a?(String)

    value
  end

  def self.count_field(at, value)
    raise HelperError.new(at, "not a non-negative integer (got #{value.inspect})") unless value.is_a?(Integer) && value >= 0

    value
  end

  def self.cursor_field(at, raw)
    raise HelperError.new(at, "not an object") unless raw.is_a?(Hash)

    id = string_field("#{at}.batch_id", raw["batch_id"])
    raise HelperError.new("#{at}.batch_id", "empty") if id.empty?

    %w[start_cursor end_cursor].each { |f| raise HelperError.new("#{at}.#{f}", "missing") unless raw.key?(f) }
    size = raw["batch_size"].nil? ? 0 : count_field("#{at}.batch_size", raw["batch_size"])
    { "batch_id" => id, "start_cursor" => raw["start_cursor"], "end_cursor" => raw["end_cursor"], "batch_size" => size }
  end
  private_class_method :string_field, :count_field, :cursor_field

  # step.inputs of a batch worker: { "cursor", "batch_metadata" => { "cursor_field", "failure_strategy" },
  # "is_no_op" }, defaults filled in; the flat form (the cursor config itself) too. HelperError otherwise.
  def self.batch_worker(env)
    at = "step.inputs"
    inputs = env["step"]["inputs"]
    raise HelperError.new(at, "empty: step #{env['step']['name'].inspect} is not a batch worker") if inputs.nil?
    raise HelperError.new(at, "not an object") unless inputs.is_a?(Hash)

    meta = { "cursor_field" => "", "failure_strategy" => "" }
    unless inputs.key?("cursor")
      raise HelperError.new("#{at}.cursor", "missing: step #{env['step']['name'].inspect} is not a batch worker") unless inputs.key?("batch_id")

      return { "cursor" => cursor_field(at, inputs), "batch_metadata" => meta, "is_no_op" => false }
    end
    cursor = cursor_field("#{at}.cursor", inputs["cursor"])
    unless (raw = inputs["batch_metadata"]).nil?
      raise HelperError.new("#{at}.batch_metadata", "not an object") unless raw.is_a?(Hash)

      meta.each_key { |f| meta[f] = string_field("#{at}.batch_metadata.#{f}", raw[f]) unless raw[f].nil? }
    end
    no_op = inputs["is_no_op"]
    raise HelperError.new("#{at}.is_no_op", "not a boolean") unless [nil, true, false].include?(no_op)

    { "cursor" => cursor, "batch_metadata" => meta, "is_no_op" => no_op == true }
  end

  # --- checkpoints (checkpoint.go) ---

  # The result that saves a checkpoint and asks to be called again at once, without using an attempt.
  def self.yield_checkpoint(cursor, items_processed, accumulated_results = nil)
    checkpoint = { "cursor" => cursor, "items_processed" => items_processed }
    checkpoint["accumulated_results"] = accumulated_results unless accumulated_results.nil?
    StepResult.build("success" => false, "status" => "yielded", "checkpoint" => checkpoint)
  end

  # The checkpoint the step last yielded, { "cursor", "items_processed", ["accumulated_results"] }, or nil on
  # the first call; HelperError when it is malformed.
  def self.resume_from(env)
    at = "step.checkpoint"
    cp = env["step"]["checkpoint"]
    return nil if cp.nil?
    raise HelperError.new(at, "not an object") unless cp.is_a?(Hash)

    out = { "cursor" => cp["cursor"], "items_processed" => 0 }
    out["items_processed"] = count_field("#{at}.items_processed", cp["items_processed"]) unless cp["items_processed"].nil?
    out["accumulated_results"] = cp["accumulated_results"] if cp.key?("accumulated_results")
    out
  end

  # The checkpoint's cursor as an integer; ArgumentError when it is not one.
  def self.int_cursor(checkpoint)
    raise ArgumentError, "checkpoint cursor #{checkpoint['cursor'].inspect} is not an integer" unless checkpoint["cursor"].is_a?(Integer)

    checkpoint["cursor"]
  end

  # --- dependency results (dependency.go) ---

  # Reading a dependency's field failed; the subclasses tell the causes apart.
  class DependencyError < StandardError; end
  # Not in dependency_results (not an ancestor, or not completed).
  class UnknownDependency < DependencyError; end
  # The dependency's result reports a failure.
  class DependencyFailed < DependencyError; end
  # A key is missing or an index out of range: rescue FieldNotFound for an optional field.
  class FieldNotFound < DependencyError; end

  PART = /\A([^\[\]]*)((?:\[\d+\])*)\z/

  def self.parse_path(path)
    return [] if path.empty?

    path.split(".", -1).each_with_index.flat_map do |part, i|
      m = PART.match(part) or raise DependencyError, "path #{path.inspect}: bad segment #{part.inspect}: want key[n][m]..."
      key, indices = m.captures
      raise DependencyError, "path #{path.inspect}: empty key" if key.empty? && (i.positive? || indices.empty?)

      (key.empty? ? [] : [key]) + indices.scan(/\d+/).map { |n| Integer(n, 10) }
    end
  end
  private_class_method :parse_path

  # The value at path ("order.total", "items[2].sku", "[0]", "": all) in the result of dependency `step`.
  # Raises UnknownDependency, DependencyFailed, FieldNotFound, or DependencyError (a bad path, or a key of
  # something that is not an object, an index of something that is not an array).
  def self.dependency_field(env, step, path = "")
    segments = begin
      parse_path(path)
    rescue DependencyError => e
      raise DependencyError, "dependency #{step.inspect}: #{e.message}"
    end
    deps = env["dependency_results"] || {}
    dep = deps[step] or raise UnknownDependency, "dependency #{step.inspect}: unknown dependency (dependency_results has #{deps.keys.sort})"
    if !dep["success"] || dep["status"] == "failed"
      raise DependencyFailed, "dependency #{step.inspect}: dependency failed: #{dep.dig('error', 'message') || 'no error given'}"
    end

    at = "result"
    segments.reduce(dep["result"]) do |cur, seg|
      parent = at
      at += seg.is_a?(String) ? ".#{seg}" : "[#{seg}]"
      want = seg.is_a?(String) ? Hash : Array
      raise DependencyError, "dependency #{step.inspect}: #{at}: #{parent} is not an #{want == Hash ? 'object' : 'array'}" unless cur.is_a?(want)

      found = seg.is_a?(String) ? cur.key?(seg) : seg < cur.size
      raise FieldNotFound, "dependency #{step.inspect}: #{at}: not found" unless found

      cur[seg]
    end
  end
end
