# frozen_string_literal: true

# ruby test_handler.rb (in this directory): the shared webhook vectors, the helpers against the Go helper
# vectors, and the steps.
require "json"
require "minitest/autorun"
require_relative "handler"

class WebhookVectorsTest < Minitest::Test
  VECTORS = JSON.parse(File.read(File.expand_path("../../../contracts/testdata/webhook-vectors.json", __dir__)))

  def test_tolerance
    assert_equal VECTORS["tolerance_seconds"], ExampleHandler::TOLERANCE_SECONDS
    assert_operator VECTORS["cases"].size, :>, 20
  end

  VECTORS["cases"].each do |c|
    define_method("test_vector_#{c['name']}") do
      begin
        verifier = ExampleHandler::Verifier.new(c["secrets"])
      rescue ExampleHandler::WebhookError => e
        assert_equal "invalid_secret", c["error"]
        return assert_equal(c["error"], e.code)
      end
      if c["signed_by_secrets"]
        assert_equal c["signature_header"], verifier.sign(c["id"], c["timestamp"], c["body"])
      end
      headers = { "webhook-id" => c["id"], "webhook-timestamp" => c["timestamp"], "webhook-signature" => c["signature_header"] }
      error = begin
        verifier.verify(headers, c["body"], now: c["now"])
        ""
      rescue ExampleHandler::WebhookError => e
        e.code
      end
      assert_equal c["error"], error
      assert_equal c["valid"], error.empty?
    end
  end
end

class StepsTest < Minitest::Test
  ORDER = { "order" => { "total" => 125.5, "address" => "1 Main St", "items" => [{ "sku" => "kb-42", "quantity" => 1 }] } }.freeze

  def envelope(callable, attempts: 1, context: {}, deps: {})
    { "task" => { "task_uuid" => "t1", "context" => context }, "step" => { "step_uuid" => "s1", "attempts" => attempts },
      "step_definition" => { "handler" => { "callable" => callable } },
      "dependency_results" => deps.transform_values { |v| { "success" => true, "result" => v } } }
  end

  def test_charge_reads_context_and_dependency
    res, status, = ExampleHandler.run_step(envelope("order_fulfillment.charge", context: ORDER, deps: { "validate_order" => { "valid" => true } }))
    assert_equal [200, true, 125.5, "s1"], [status, res[:success], res[:result][:amount], res[:step_uuid]]
  end

  def test_reserve_stock_is_retryable_on_first_attempt
    res, status, retry_after = ExampleHandler.run_step(envelope("order_fulfillment.reserve_stock"))
    assert_equal [503, 1, true], [status, retry_after, res[:error][:retryable]]
    _, status, = ExampleHandler.run_step(envelope("order_fulfillment.reserve_stock", attempts: 2))
    assert_equal 200, status
  end

  def test_ship_without_address_is_permanent
    res, status, = ExampleHandler.run_step(envelope("order_fulfillment.ship", context: { "order" => {} }))
    assert_equal [422, "no_address", false], [status, res[:error][:error_type], res[:error][:retryable]]
  end
end

# TaskerHelpers agrees with Go's contracts package (examples/handlers/testdata/helper-vectors.json).
class HelperVectorsTest < Minitest::Test
  TH = TaskerHelpers
  V = JSON.parse(File.read(File.expand_path("../testdata/helper-vectors.json", __dir__)))

  def test_even_cursors_10_on_4 # the example of contracts/README.md
    cursors = TH.even_cursors(10, 4)
    assert_equal %w[001 002 003 004], cursors.map { |c| c["batch_id"] }
    assert_equal [3, 3, 2, 2], cursors.map { |c| c["batch_size"] }
    assert_equal [[0, 3], [3, 6], [6, 8], [8, 10]], cursors.map { |c| TH.int_range(c) }
  end

  def test_batch_ids
    V["batch_ids"].each { |c| assert_equal c["id"], TH.batch_id(c["n"]) }
  end

  def test_cursors
    V["even_cursors"].each { |c| assert_equal c["cursors"], TH.even_cursors(c["total"], c["workers"]), c.inspect }
    V["cursors_by_size"].each { |c| assert_equal c["cursors"], TH.cursors_by_size(c["total"], c["size"]), c.inspect }
  end

  def test_outcomes
    V["outcomes"].each do |c|
      outcome = case c["kind"]
                when "create_steps" then TH.create_steps(*c["step_names"])
                when "no_branches" then TH.no_branches
                when "create_batches" then TH.create_batches(c["worker_template_name"], TH.even_cursors(c["total_items"], c["workers"]), c["total_items"])
                else TH.no_batches
                end
      res = outcome.result(c["extra"])
      assert_kind_of TH::StepResult, res
      assert_equal c["result"], JSON.parse(JSON.generate(res)), c["name"]
    end
  end

  def test_dependency_fields
    env = { "dependency_results" => V["dependency_results"] }
    causes = { "unknown_dependency" => TH::UnknownDependency, "dependency_failed" => TH::DependencyFailed, "not_found" => TH::FieldNotFound }
    V["dependency_fields"].each do |c|
      unless c.key?("error")
        got = TH.dependency_field(env, c["step"], c["path"])
        c["value"].nil? ? assert_nil(got) : assert_equal(c["value"], got, c.inspect)
        next
      end
      e = assert_raises(TH::DependencyError, c.inspect) { TH.dependency_field(env, c["step"], c["path"]) }
      if causes.key?(c["error"])
        assert_kind_of causes[c["error"]], e, c.inspect
      else # wrong_type, bad_path: none of the specific causes
        assert_equal TH::DependencyError, e.class, c.inspect
      end
    end
  end

  def test_batch_workers
    V["batch_workers"].each do |c|
      env = { "step" => { "name" => "w", "inputs" => c["inputs"] } }
      if c["error"]
        assert_raises(TH::HelperError, c["name"]) { TH.batch_worker(env) }
        next
      end
      got = TH.batch_worker(env)
      assert_equal c["want"], got, c["name"]
      if c.key?("int_range")
        assert_equal c["int_range"], TH.int_range(got["cursor"])
      else
        assert_raises(ArgumentError, c["name"]) { TH.int_range(got["cursor"]) }
      end
    end
  end

  def test_resume_from
    V["resume_from"].each do |c|
      env = { "step" => { "checkpoint" => c["checkpoint"] } }
      if c["error"]
        assert_raises(TH::HelperError, c["name"]) { TH.resume_from(env) }
      elsif c["none"]
        assert_nil TH.resume_from(env)
      else
        cp = TH.resume_from(env)
        assert_equal c["want"], cp, c["name"]
        c.key?("int_cursor") ? assert_equal(c["int_cursor"], TH.int_cursor(cp)) : assert_raises(ArgumentError) { TH.int_cursor(cp) }
      end
    end
  end

  def test_yields
    V["yields"].each do |c|
      res = TH.yield_checkpoint(c["cursor"], c["items_processed"], c["accumulated_results"])
      assert_equal c["result"], JSON.parse(JSON.generate(res))
    end
  end
end

class DynamicStepsTest < Minitest::Test
  TH = TaskerHelpers

  def envelope(callable, context: {}, deps: {}, inputs: {}, checkpoint: nil)
    { "task" => { "task_uuid" => "t1", "context" => context },
      "step" => { "step_uuid" => "s1", "attempts" => 1, "inputs" => inputs, "checkpoint" => checkpoint },
      "step_definition" => { "handler" => { "callable" => callable } },
      "dependency_results" => deps.transform_values { |v| { "success" => true, "result" => v } } }
  end

  def run_ok(env)
    res, status, = ExampleHandler.run_step(env)
    assert_equal 200, status, res.inspect
    JSON.parse(JSON.generate(res))
  end

  def test_route_by_amount
    [[0, nil], [500, %w[auto_approve]], [2000, %w[manager_approval]], [7500, %w[manager_approval finance_review]]].each do |amount, names|
      res = run_ok(envelope("approval.route", context: { "request" => { "id" => "r", "amount" => amount } }))
      want = names ? { "type" => "create_steps", "step_names" => names } : { "type" => "no_branches" }
      assert_equal want, res["result"]["decision_point_outcome"]
      assert_equal amount, res["result"]["amount"]
    end
  end

  def test_finalize_sees_the_branches_taken
    deps = { "route_approval" => { "amount" => 30_000 }, "manager_approval" => { "approved" => true }, "finance_review" => { "approved" => false } }
    res = run_ok(envelope("approval.finalize", deps: deps))
    assert_equal({ "decision" => "rejected", "approvals" => %w[manager_approval finance_review], "amount" => 30_000 }, res["result"])
    res = run_ok(envelope("approval.finalize", deps: { "route_approval" => { "amount" => 0 } }))
    assert_equal "nothing_to_approve", res["result"]["decision"]
  end

  def test_etl
    ctx = { "etl" => { "id" => "e", "rows" => 10, "workers" => 4, "checkpoint_every" => 2 } }
    res = run_ok(envelope("etl.analyze", context: ctx))
    assert_equal TH.even_cursors(10, 4), res["result"]["batch_processing_outcome"]["cursor_configs"]
    inputs = { "cursor" => TH.even_cursors(10, 4)[0] } # rows 0, 1, 2
    res = run_ok(envelope("etl.transform", context: ctx, inputs: inputs))
    assert_equal ["yielded", 2, 2], [res["status"], res["checkpoint"]["cursor"], res["checkpoint"]["items_processed"]]
    res = run_ok(envelope("etl.transform", context: ctx, inputs: inputs, checkpoint: res["checkpoint"]))
    want = (0...3).sum { |i| ExampleHandler.row_amount(i) }
    assert_equal({ "batch_id" => "001", "start" => 0, "end" => 3, "rows" => 3, "amount_cents" => want, "calls" => 2 }, res["result"])
    res = run_ok(envelope("etl.aggregate", deps: { "analyze_rows" => { "rows" => 3 }, "transform_rows_001" => res["result"] }))
    assert_equal({ "workers" => 1, "failed_workers" => 0, "rows" => 3, "rows_expected" => 3, "amount_cents" => want }, res["result"])
  end
end
