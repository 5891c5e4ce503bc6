package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"time"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// orderTemplate is the workflow: charge and reserve at once, then mail.
var orderTemplate = []byte(`
name: order
namespace_name: shop
version: 1.0.0
steps:
  - name: charge
    handler: {callable: payments.charge}
  - name: reserve
    handler: {callable: inventory.reserve}
  - name: confirm
    dependencies: [charge, reserve]
    handler: {callable: mail.confirm}
`)

// order is the task's context.
type order struct {
	OrderID     string `json:"order_id"`
	AmountCents int    `json:"amount_cents"`
}

// charge is an in-process Go handler.
func charge(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error) {
	var o order
	if err := json.Unmarshal(env.Task.Context, &o); err != nil {
		return contracts.StepResult{}, err
	}
	res, _ := json.Marshal(map[string]any{"receipt": "r-" + o.OrderID, "charged_cents": o.AmountCents})
	return contracts.StepResult{Success: true, Result: res}, nil
}

// reserve is another in-process Go handler.
func reserve(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
	return contracts.StepResult{Success: true, Result: json.RawMessage(`{"reserved":true}`)}, nil
}

// mailServer is the HTTP handler service: it answers each step envelope
// POSTed to it with a step result, as any language's handler would.
type mailServer struct {
	*http.Server
	Addr string // host:port it listens on
}

func serveMail() (*mailServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env contracts.StepEnvelope
		if err := json.NewDecoder(r.Body).Decode(&env); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var paid struct{ Receipt string }
		_ = json.Unmarshal(env.DependencyResults["charge"].Result, &paid)
		res, _ := json.Marshal(map[string]string{"mailed": "receipt " + paid.Receipt})
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(contracts.StepResult{Success: true, Result: res})
	})
	s := &mailServer{Server: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, Addr: ln.Addr().String()}
	go func() { _ = s.Serve(ln) }()
	return s, nil
}
