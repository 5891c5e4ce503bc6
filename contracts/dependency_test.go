package contracts_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tasker-runner/tasker-runner/contracts"
)

func dependencyEnvelope() *contracts.StepEnvelope {
	return &contracts.StepEnvelope{DependencyResults: map[string]contracts.StepResult{
		"fetch_order": {Success: true, Status: contracts.StatusCompleted, Result: json.RawMessage(`{
			"order": {"id": "o-1", "total": 125.5, "paid": true, "note": null},
			"items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}, {"sku": "C-3", "qty": 5, "tags": [["x", "y"]]}],
			"a.b": 1
		}`)},
		"list":     {Success: true, Result: json.RawMessage(`[10, 20, 30]`)},
		"nothing":  {Success: true},
		"scalar":   {Success: true, Result: json.RawMessage(`"done"`)},
		"declined": {Success: false, Status: contracts.StatusFailed, Error: &contracts.StepError{Message: "card declined"}},
		"marked":   {Success: true, Status: contracts.StatusFailed},
	}}
}

func TestDependencyField(t *testing.T) {
	t.Parallel()
	env := dependencyEnvelope()
	cases := []struct {
		step, path, want string
	}{
		{"fetch_order", "order.total", `125.5`},
		{"fetch_order", "order.id", `"o-1"`},
		{"fetch_order", "order.note", `null`},
		{"fetch_order", "items[2].sku", `"C-3"`},
		{"fetch_order", "items[0]", `{"sku": "A-1", "qty": 2}`},
		{"fetch_order", "items[2].tags[0][1]", `"y"`},
		{"list", "[1]", `20`},
		{"list", "", `[10, 20, 30]`},
		{"nothing", "", `null`},
		{"scalar", "", `"done"`},
	}
	for _, c := range cases {
		got, err := env.DependencyField(c.step, c.path)
		if err != nil || string(got) != c.want {
			t.Errorf("DependencyField(%q, %q) = %s, %v; want %s", c.step, c.path, got, err, c.want)
		}
	}
}

func TestDependencyFieldErrors(t *testing.T) {
	t.Parallel()
	env := dependencyEnvelope()
	cases := []struct {
		step, path string
		is         error // nil: none of the sentinels
		want       string
	}{
		{"fetch", "", contracts.ErrUnknownDependency,
			`dependency "fetch": unknown dependency (dependency_results has "declined", "fetch_order", "list", "marked", "nothing", "scalar")`},
		{"declined", "x", contracts.ErrDependencyFailed, `dependency "declined": dependency failed: card declined`},
		{"marked", "", contracts.ErrDependencyFailed, `dependency "marked": dependency failed: no error given`},
		{"fetch_order", "order.totl", contracts.ErrFieldNotFound,
			`dependency "fetch_order": result.order.totl: not found: no key "totl" (result.order has "id", "note", "paid", "total")`},
		{"fetch_order", "items[3].sku", contracts.ErrFieldNotFound,
			`dependency "fetch_order": result.items[3]: not found: index 3 out of range (3 items)`},
		{"fetch_order", "order.total.cents", nil,
			`dependency "fetch_order": result.order.total.cents: result.order.total is a number, not an object`},
		{"fetch_order", "order[0]", nil, `dependency "fetch_order": result.order[0]: result.order is an object, not an array`},
		{"fetch_order", "order.note.x", nil, `dependency "fetch_order": result.order.note.x: result.order.note is null, not an object`},
		{"fetch_order", "a.b", contracts.ErrFieldNotFound,
			`dependency "fetch_order": result.a: not found: no key "a" (result has "a.b", "items", "order")`},
		{"list", "count", nil, `dependency "list": result.count: result is an array, not an object`},
		{"nothing", "x", nil, `dependency "nothing": result.x: result is null, not an object`},
		{"scalar", "[0]", nil, `dependency "scalar": result[0]: result is a string, not an array`},
		{"fetch_order", "items[x]", nil, `dependency "fetch_order": path "items[x]": bad index in "items[x]": want [n] with n a non-negative integer`},
		{"fetch_order", "items[-1]", nil, `dependency "fetch_order": path "items[-1]": bad index in "items[-1]": want [n] with n a non-negative integer`},
		{"fetch_order", "items[+1]", nil, `dependency "fetch_order": path "items[+1]": bad index in "items[+1]": want [n] with n a non-negative integer`},
		{"fetch_order", "items[1", nil, `dependency "fetch_order": path "items[1": bad index in "items[1": want [n] with n a non-negative integer`},
		{"fetch_order", "items[]", nil, `dependency "fetch_order": path "items[]": bad index in "items[]": want [n] with n a non-negative integer`},
		{"fetch_order", "items[1]sku", nil, `dependency "fetch_order": path "items[1]sku": "sku" after an index in "items[1]sku": separate keys with '.'`},
		{"fetch_order", "items]", nil, `dependency "fetch_order": path "items]": unbalanced ']' in "items]"`},
		{"fetch_order", "order..total", nil, `dependency "fetch_order": path "order..total": empty key`},
		{"fetch_order", ".order", nil, `dependency "fetch_order": path ".order": empty key`},
		{"fetch_order", "order.", nil, `dependency "fetch_order": path "order.": empty key`},
		{"fetch_order", "items.[1]", nil, `dependency "fetch_order": path "items.[1]": empty key`},
	}
	sentinels := []error{contracts.ErrUnknownDependency, contracts.ErrDependencyFailed, contracts.ErrFieldNotFound}
	for _, c := range cases {
		got, err := env.DependencyField(c.step, c.path)
		if err == nil {
			t.Errorf("DependencyField(%q, %q) = %s, want an error", c.step, c.path, got)
			continue
		}
		if err.Error() != c.want {
			t.Errorf("DependencyField(%q, %q):\n got: %v\nwant: %s", c.step, c.path, err, c.want)
		}
		for _, s := range sentinels {
			if errors.Is(err, s) != (s == c.is) {
				t.Errorf("DependencyField(%q, %q): errors.Is(err, %v) = %v", c.step, c.path, s, !(s == c.is))
			}
		}
	}

	// The list of known dependencies is cut after ten names.
	many := &contracts.StepEnvelope{DependencyResults: map[string]contracts.StepResult{}}
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"} {
		many.DependencyResults[n] = contracts.StepResult{Success: true}
	}
	_, err := many.DependencyField("z", "")
	if want := `dependency "z": unknown dependency (dependency_results has "a", "b", "c", "d", "e", "f", "g", "h", "i", "j" and 2 more)`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	// A root step has no dependencies at all.
	_, err = (&contracts.StepEnvelope{}).DependencyField("a", "")
	if want := `dependency "a": unknown dependency (dependency_results has nothing)`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestDependencyValue(t *testing.T) {
	t.Parallel()
	env := dependencyEnvelope()
	if total, err := contracts.DependencyValue[float64](env, "fetch_order", "order.total"); err != nil || total != 125.5 {
		t.Errorf("total = %v, %v", total, err)
	}
	type item struct {
		SKU string `json:"sku"`
		Qty int    `json:"qty"`
	}
	items, err := contracts.DependencyValue[[]item](env, "fetch_order", "items")
	if want := []item{{"A-1", 2}, {"B-2", 1}, {"C-3", 5}}; err != nil || !reflect.DeepEqual(items, want) {
		t.Errorf("items = %v, %v", items, err)
	}
	if note, err := contracts.DependencyValue[*string](env, "fetch_order", "order.note"); err != nil || note != nil {
		t.Errorf("null into a pointer = %v, %v", note, err)
	}
	if n, err := contracts.DependencyValue[int](env, "list", "[2]"); err != nil || n != 30 {
		t.Errorf("list[2] = %v, %v", n, err)
	}

	// (encoding/json's own wording follows the prefix.)
	_, err = contracts.DependencyValue[int](env, "fetch_order", "order.id")
	var typeErr *json.UnmarshalTypeError
	if want := `dependency "fetch_order": result.order.id: decoding into int: `; err == nil || !strings.HasPrefix(err.Error(), want) || !errors.As(err, &typeErr) {
		t.Errorf("wrong type:\n got: %v\nwant: %s...", err, want)
	}
	_, err = contracts.DependencyValue[[]int](env, "scalar", "")
	if want := `dependency "scalar": result: decoding into []int: `; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("wrong type:\n got: %v\nwant: %s...", err, want)
	}
	// An optional field: tell absence from a broken contract.
	if _, err := contracts.DependencyValue[string](env, "fetch_order", "order.coupon"); !errors.Is(err, contracts.ErrFieldNotFound) {
		t.Errorf("absent field: %v", err)
	}
}
