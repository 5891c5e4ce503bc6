# frozen_string_literal: true

# ruby test_handler.rb (in this directory): the shared webhook vectors and the steps.
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
