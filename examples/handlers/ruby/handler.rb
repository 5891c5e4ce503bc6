# frozen_string_literal: true

# tasker-runner example handler service in Ruby: WEBrick and the standard library.
# Runs the steps of the example workflows (examples/templates; see README.md and contracts/README.md):
#
#   PORT=8093 TASKER_WEBHOOK_SECRET=whsec_... ruby handler.rb
#
# POST / or POST /<callable> runs a step envelope, or a batch {"steps": [...]}; GET /health answers ok.
# With TASKER_WEBHOOK_SECRET set (several space-separated during a rotation) every request must carry a
# valid Standard Webhooks signature. SIGTERM or SIGINT stops the server.

require "base64"
require "json"
require "openssl"
require "time"
require "webrick"
require_relative "tasker_helpers"

module ExampleHandler
  MAX_BODY_BYTES = 4 << 20 # larger requests get 413, as in the Go example
  DISCARD_LIMIT = 64 << 20 # an unread body up to this size is discarded before an error answer, or the connection closed
  TOLERANCE_SECONDS = 300

  # --- Standard Webhooks verification (checked against contracts/testdata/webhook-vectors.json) ---

  # code is one of the vector file's error codes, e.g. "invalid_signature".
  class WebhookError < StandardError
    attr_reader :code

    def initialize(code)
      super
      @code = code
    end
  end

  class Verifier
    def initialize(secrets)
      raise WebhookError, "invalid_secret" if secrets.empty?

      @keys = secrets.map do |secret|
        b64 = secret.delete_prefix("whsec_")
        key = begin
          Base64.strict_decode64(b64)
        rescue ArgumentError
          nil
        end
        # strict: the prefix, canonical standard base64, 24 to 64 bytes
        if b64 == secret || key.nil? || Base64.strict_encode64(key) != b64 || !key.bytesize.between?(24, 64)
          raise WebhookError, "invalid_secret"
        end

        key
      end
    end

    # The webhook-signature value: one v1 entry per secret, in order.
    def sign(id, timestamp, body)
      @keys.map { |key| "v1,#{Base64.strict_encode64(digest(key, id, timestamp, body))}" }.join(" ")
    end

    # Raises WebhookError unless headers (webhook-id, -timestamp, -signature) sign body.
    def verify(headers, body, now: Time.now.to_i)
      id, ts, sigs = %w[webhook-id webhook-timestamp webhook-signature].map { |h| headers[h].to_s }
      raise WebhookError, "missing_headers" if [id, ts, sigs].any?(&:empty?)
      raise WebhookError, "invalid_timestamp" unless ts.match?(/\A[0-9]{1,18}\z/)
      raise WebhookError, "timestamp_too_old" if ts.to_i < now - TOLERANCE_SECONDS
      raise WebhookError, "timestamp_too_new" if ts.to_i > now + TOLERANCE_SECONDS

      wanted = @keys.map { |key| digest(key, id, ts, body) }
      sigs.split.each do |entry|
        version, b64 = entry.split(",", 2)
        next unless version == "v1" && b64&.length == 44 # another scheme (v1a, v2) or not a signature

        got = begin
          Base64.strict_decode64(b64)
        rescue ArgumentError
          next
        end
        return if wanted.any? { |w| OpenSSL.fixed_length_secure_compare(got, w) }
      end
      raise WebhookError, "invalid_signature"
    end

    private

    def digest(key, id, timestamp, body)
      OpenSSL::HMAC.digest("SHA256", key, "#{id}.#{timestamp}.".b + body.b)
    end
  end

  # --- the steps ---

  # Fails a step: retryable false makes it permanent; status (503, 422...) is the HTTP status of a
  # single-step answer; retry_after (seconds) asks the runner to wait before the next attempt.
  class StepFailure < StandardError
    attr_reader :error_type, :retryable, :status, :retry_after

    def initialize(error_type, message, retryable: false, status: nil, retry_after: nil)
      super(message)
      @error_type, @retryable, @status, @retry_after = error_type, retryable, status, retry_after
    end
  end

  def self.read_order(env)
    order = env["task"]["context"].fetch("order", {})
    unless order.is_a?(Hash) && order.fetch("total", 0).is_a?(Numeric) &&
           order.fetch("items", []).is_a?(Array) && order.fetch("address", "").is_a?(String)
      raise StepFailure.new("invalid_context", "the task context is not an order")
    end

    order
  end

  # --- the approval workflow (a decision point) and the batch ETL (batches, checkpoints) ---

  TH = TaskerHelpers
  APPROVALS = %w[auto_approve manager_approval finance_review].freeze # the decision's branches, in template order
  AUTO_APPROVE_BELOW = 1000
  FINANCE_REVIEW_FROM = 5000
  FINANCE_REFUSE_ABOVE = 25_000

  # The decision: which approvals the request's amount needs (none at 0 or less).
  def self.route(env)
    amount = env["task"]["context"].fetch("request", {})["amount"]
    raise StepFailure.new("invalid_context", "the task context has no request.amount") unless amount.is_a?(Numeric)

    extra = { "amount" => amount }
    return TH.no_branches.result(extra) if amount <= 0
    return TH.create_steps("auto_approve").result(extra) if amount < AUTO_APPROVE_BELOW
    return TH.create_steps("manager_approval").result(extra) if amount < FINANCE_REVIEW_FROM

    TH.create_steps("manager_approval", "finance_review").result(extra)
  end

  def self.route_amount(env)
    TH.dependency_field(env, "route_approval", "amount")
  rescue TH::DependencyError => e
    raise StepFailure.new("missing_dependency", e.message)
  end

  def self.approve(approver, limit = nil)
    lambda do |env|
      amount = route_amount(env)
      out = { approved: limit.nil? || amount <= limit, approver: approver, amount: amount }
      out[:reason] = "over the #{approver} limit of #{limit}" unless out[:approved]
      out
    end
  end

  # The convergence: runs once, after whichever approvals were created.
  def self.finalize(env)
    amount = route_amount(env)
    taken = APPROVALS.select { |name| env["dependency_results"].key?(name) } # a branch not taken was never created
    approved = taken.map do |name|
      TH.dependency_field(env, name, "approved") == true
    rescue TH::DependencyError
      false
    end
    decision = if taken.empty? then "nothing_to_approve"
               elsif approved.all? then "approved"
               else "rejected"
               end
    { decision: decision, approvals: taken, amount: amount }
  end

  def self.read_etl(env)
    etl = env["task"]["context"]["etl"]
    unless etl.is_a?(Hash) && etl["rows"].is_a?(Integer) && etl["rows"] >= 0
      raise StepFailure.new("invalid_context", "the task context has no etl.rows")
    end

    [etl["rows"], [etl["workers"] || 4, 1].max, [etl["checkpoint_every"] || 1000, 1].max]
  end

  # The generated row's amount in cents: from its id alone, so every language agrees.
  def self.row_amount(id) = id * 7919 % 10_007

  # The batchable step: even cursor ranges over the rows, one transform_rows worker each.
  def self.analyze(env)
    rows, workers, = read_etl(env)
    return TH.no_batches.result({ "rows" => 0 }) if rows.zero?

    TH.create_batches("transform_rows", TH.even_cursors(rows, workers), rows).result({ "rows" => rows })
  end

  # A batch worker: checkpoint_every rows per call, a checkpoint after each call but the last.
  def self.transform(env)
    _, _, every = read_etl(env)
    begin
      inputs = TH.batch_worker(env)
      start, stop = TH.int_range(inputs["cursor"])
      cp = TH.resume_from(env)
      pos = cp ? TH.int_cursor(cp) : start
      acc = cp ? cp.fetch("accumulated_results") : { "rows" => 0, "amount_cents" => 0, "calls" => 0 }
    rescue ArgumentError, KeyError => e
      raise StepFailure.new("invalid_inputs", e.message)
    end
    upto = [pos + every, stop].min
    acc = { "rows" => acc["rows"] + upto - pos, "amount_cents" => acc["amount_cents"] + (pos...upto).sum { |i| row_amount(i) },
            "calls" => acc["calls"] + 1 }
    return TH.yield_checkpoint(upto, upto - start, acc) if upto < stop

    { "batch_id" => inputs["cursor"]["batch_id"], "start" => start, "end" => stop, **acc }
  end

  # The convergence: adds up every worker's result (a failed worker shows as success false).
  def self.aggregate(env)
    expected = begin
      TH.dependency_field(env, "analyze_rows", "rows")
    rescue TH::DependencyError => e
      raise StepFailure.new("missing_dependency", e.message)
    end
    out = { workers: 0, failed_workers: 0, rows: 0, rows_expected: expected, amount_cents: 0 }
    env["dependency_results"].each_key do |name|
      next unless name.start_with?("transform_rows_")

      rows, cents = %w[rows amount_cents].map { |f| TH.dependency_field(env, name, f) }
      out[:workers] += 1
      out[:rows] += rows
      out[:amount_cents] += cents
    rescue TH::DependencyFailed
      out[:failed_workers] += 1
    rescue TH::FieldNotFound
      next # the placeholder worker of no_batches: {"no_op": true}
    end
    out
  end

  STEPS = {
    "order_fulfillment.validate_order" => lambda do |env|
      order = read_order(env)
      problems = []
      problems << "order.total must be positive" unless order.fetch("total", 0).positive?
      problems << "order.items is empty" if order.fetch("items", []).empty?
      { valid: problems.empty?, problems: problems, total: order.fetch("total", 0) }
    end,
    "order_fulfillment.charge" => lambda do |env|
      order = read_order(env)
      validation = env["dependency_results"].dig("validate_order", "result")
      unless validation.is_a?(Hash) && validation["valid"] == true
        raise StepFailure.new("order_invalid", "validate_order did not find the order valid")
      end
      if order.fetch("total", 0) > 10_000 # a business failure, in a 200
        raise StepFailure.new("card_declined", format("card declined for %.2f", order["total"]))
      end

      # the step_uuid is the same on every attempt: charging twice is charging once
      { charge_id: "ch_#{env['step']['step_uuid']}", amount: order.fetch("total", 0), currency: order["currency"] || "EUR" }
    end,
    "order_fulfillment.reserve_stock" => lambda do |env|
      if env["step"]["attempts"] < 2 # a retryable failure: 503 with Retry-After
        raise StepFailure.new("warehouse_busy", "the warehouse is busy, try again shortly",
                              retryable: true, status: 503, retry_after: 1)
      end

      { reservation_id: "rsv_#{env['step']['step_uuid']}", attempt: env["step"]["attempts"] }
    end,
    "order_fulfillment.ship" => lambda do |env|
      order = read_order(env)
      # a permanent failure: 422, retryable false
      raise StepFailure.new("no_address", "order.address is missing", status: 422) if order.fetch("address", "").empty?

      { tracking: "trk_#{env['task']['task_uuid']}", address: order["address"] }
    end,
    "approval.route" => method(:route),
    "approval.auto_approve" => approve("policy", AUTO_APPROVE_BELOW),
    "approval.manager_approval" => approve("manager"),
    "approval.finance_review" => approve("finance", FINANCE_REFUSE_ABOVE),
    "approval.finalize" => method(:finalize),
    "etl.analyze" => method(:analyze),
    "etl.transform" => method(:transform),
    "etl.aggregate" => method(:aggregate),
    "conformance.echo" => lambda do |env|
      { step_uuid: env["step"]["step_uuid"], attempt: env["step"]["attempts"], inputs: env["step"]["inputs"] }
    end
  }.freeze

  # --- results and the HTTP service ---

  def self.failed(failure)
    error = { message: failure.message, error_type: failure.error_type, retryable: failure.retryable }
    error[:status_code] = failure.status if failure.status
    result = { success: false, status: "failed", error: error }
    if failure.retry_after
      result[:orchestration_metadata] = { backoff_hint: { delay_seconds: failure.retry_after, backoff_type: "server_requested" } }
    end
    result
  end

  # Runs one envelope: returns [StepExecutionResult, HTTP status, Retry-After seconds or nil].
  def self.run_step(env, log: nil)
    callable = env["step_definition"]["handler"]["callable"].to_s
    step = STEPS[callable]
    unless step
      failure = StepFailure.new("handler_not_found", "this service has no step #{callable.inspect}", status: 404)
      return [{ step_uuid: env["step"]["step_uuid"].to_s, **failed(failure) }, 404, nil]
    end

    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    begin
      value = step.call(env) # a TaskerHelpers::StepResult (an outcome, a checkpoint) is the answer as it is
      result = value.is_a?(TaskerHelpers::StepResult) ? value.transform_keys(&:to_sym) : { success: true, status: "completed", result: value }
      status, retry_after = 200, nil
    rescue StandardError => e # any other error is a retryable handler_error
      e = StepFailure.new("handler_error", e.message, retryable: true) unless e.is_a?(StepFailure)
      result, status, retry_after = failed(e), e.status || 200, e.retry_after
    end
    log&.info("#{callable} #{result[:status]} step_uuid=#{env['step']['step_uuid']} attempt=#{env['step']['attempts']}")
    elapsed_ms = ((Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000).round
    result[:metadata] = { execution_time_ms: elapsed_ms, handler: "examples/handlers/ruby" }
    [{ step_uuid: env["step"]["step_uuid"].to_s, **result }, status, retry_after]
  end

  # Whether the request's Tasker-Deadline (RFC 3339) has passed: the runner has stopped waiting.
  def self.deadline_passed?(req)
    Time.iso8601(req["Tasker-Deadline"].to_s) <= Time.now
  rescue ArgumentError
    false
  end

  # The answer for a step whose deadline passed: a retryable failure, without running it.
  def self.too_late(env)
    failure = StepFailure.new("deadline_exceeded", "Tasker-Deadline passed before the step started", retryable: true)
    { step_uuid: env["step"]["step_uuid"].to_s, **failed(failure) }
  end

  def self.envelope?(env)
    env.is_a?(Hash) && %w[task step step_definition].all? { |k| env[k].is_a?(Hash) } &&
      (env["dependency_results"] ||= {}).is_a?(Hash) && (env["task"]["context"] ||= {}).is_a?(Hash) &&
      (env["step_definition"]["handler"] ||= {}).is_a?(Hash)
  end

  class TooLarge < StandardError; end

  # The WEBrick handler: verifies, parses, runs and answers.
  def self.serve(req, res, verifier, log)
    return reply(res, 200, "ok\n", "text/plain") if req.request_method == "GET" && req.path == "/health"
    return problem(req, res, 405, "POST a step envelope") unless req.request_method == "POST"

    signing = %w[webhook-id webhook-timestamp webhook-signature].map { |h| req[h] }
    return problem(req, res, 401, "webhook: missing signature headers") if verifier && signing.any? { |v| v.to_s.empty? }
    return problem(req, res, 413, "request body larger than #{MAX_BODY_BYTES} bytes") if req.content_length > MAX_BODY_BYTES

    body = String.new # binary
    req.body { |chunk| raise TooLarge if (body << chunk).bytesize > MAX_BODY_BYTES }
    begin
      verifier&.verify(req, body)
    rescue WebhookError => e
      return problem(req, res, 401, "webhook: #{e.code}")
    end
    request = begin
      JSON.parse(body)
    rescue JSON::ParserError
      nil
    end
    late = deadline_passed?(req) # work past Tasker-Deadline is wasted: the step comes again
    if request.is_a?(Hash) && request["steps"].is_a?(Array) && request["steps"].all? { |env| envelope?(env) }
      return json(res, 200, { results: request["steps"].map { |env| late ? too_late(env) : run_step(env, log: log).first } })
    end
    unless envelope?(request)
      return json(res, 400, failed(StepFailure.new("bad_request", "not a step envelope or a batch")))
    end
    return json(res, 200, too_late(request)) if late

    result, status, retry_after = run_step(request, log: log)
    res["Retry-After"] = retry_after.to_s if retry_after
    json(res, status, result)
  rescue TooLarge
    problem(req, res, 413, "request body larger than #{MAX_BODY_BYTES} bytes")
  end

  # Answers with an RFC 9457 problem. WEBrick discards an unread body before answering (so that the client
  # still sending it reads the answer); past DISCARD_LIMIT the connection is closed instead.
  def self.problem(req, res, status, detail)
    res.keep_alive = false if req.content_length > DISCARD_LIMIT
    reply(res, status, JSON.generate({ type: "about:blank", status: status, detail: detail }), "application/problem+json")
  end

  def self.json(res, status, value) = reply(res, status, JSON.generate(value), "application/json")

  def self.reply(res, status, body, content_type)
    res.status = status
    res["Content-Type"] = content_type
    res.body = body
  end

  def self.main
    $stderr.sync = true
    log = WEBrick::Log.new($stderr, WEBrick::Log::INFO)
    secrets = ENV.fetch("TASKER_WEBHOOK_SECRET", "").split
    verifier = begin
      secrets.empty? ? nil : Verifier.new(secrets)
    rescue WebhookError
      abort "ruby-handler: TASKER_WEBHOOK_SECRET must be whsec_ and the base64 of 24 to 64 bytes"
    end
    server = WEBrick::HTTPServer.new(BindAddress: ENV.fetch("HOST", nil), Port: Integer(ENV.fetch("PORT", "8093")),
                                     Logger: log, AccessLog: [])
    server.mount_proc("/") { |req, res| serve(req, res, verifier, log) }
    %w[TERM INT].each { |sig| trap(sig) { server.shutdown } }
    host = ENV.fetch("HOST", "0.0.0.0")
    log.info("listening on http://#{host}:#{server.config[:Port]} (signed: #{verifier ? 'yes' : 'no'})")
    server.start
    log.info("shut down")
  end
end

ExampleHandler.main if $PROGRAM_NAME == __FILE__
