package callout_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/callout/callouttest"
	"github.com/tasker-runner/tasker-runner/contracts"
)

// Every spelling of a denied address is judged as that address; private
// ranges and ordinary names pass.
func TestURLPolicyCheck(t *testing.T) {
	t.Parallel()
	strict := &callout.URLPolicy{}
	for _, tc := range []struct {
		url  string
		rule string // "" allowed
	}{
		{"http://169.254.169.254/latest/meta-data/", "cloud metadata"},
		{"http://169.254.169.254:80/{callable}", "cloud metadata"},
		{"http://2852039166/", "cloud metadata"},          // decimal
		{"http://0xA9FEA9FE/", "cloud metadata"},          // hex
		{"http://0xa9.0xfe.0xa9.0xfe/", "cloud metadata"}, // hex per byte
		{"http://0251.0376.0251.0376/", "cloud metadata"}, // octal
		{"http://169.254.43518/", "cloud metadata"},       // a.b.c16
		{"http://169.16689662/", "cloud metadata"},        // a.b24
		{"http://[::ffff:169.254.169.254]/", "cloud metadata"},
		{"http://[::ffff:a9fe:a9fe]/", "cloud metadata"},
		{"http://[64:ff9b::a9fe:a9fe]/", "cloud metadata"}, // NAT64
		{"http://[2002:a9fe:a9fe::1]/", "cloud metadata"},  // 6to4
		{"http://[fd00:ec2::254]/", "cloud metadata"},
		{"http://100.100.100.200/", "cloud metadata"},
		{"http://metadata.google.internal/computeMetadata/v1/", "cloud metadata service"},
		{"http://METADATA.google.internal./", "cloud metadata service"},
		{"http://169.254.1.2/", "link-local"},
		{"http://[fe80::1%25eth0]:8080/", "link-local"},
		{"http://127.0.0.1:8080/", "loopback"},
		{"http://127.1/", "loopback"},
		{"http://2130706433/", "loopback"},
		{"http://0177.0.0.1/", "loopback"},
		{"http://[::1]/", "loopback"},
		{"http://[::ffff:127.0.0.1]/", "loopback"},
		{"http://localhost:9000/", "loopback host name"},
		{"http://LocalHost./", "loopback host name"},
		{"http://api.localhost/", "loopback host name"},
		{"http://0.0.0.0:8080/", "unspecified"},
		{"http://0/", "unspecified"},
		{"http://0.1.2.3/", "unspecified"},
		{"http://[::]/", "unspecified"},
		{"http://224.0.0.1/", "multicast"},
		{"http://255.255.255.255/", "broadcast"},
		{"http://[ff02::1]/", "multicast"},
		{"http://[::a9fe:a9fe]/", "IPv4-compatible"},
		{"http://1.2.3.4.5/", "neither a valid IPv4 address"},
		{"http://08.1.2.3/", "neither a valid IPv4 address"},
		{"http://host.0x1f/", "neither a valid IPv4 address"},
		{"http://4294967296/", "neither a valid IPv4 address"},
		{"http://ｌｏｃａｌｈｏｓｔ/", "not an ASCII host name"},
		{"ftp://files.example.com/", `scheme "ftp"`},
		{"file:///etc/passwd", `scheme "file"`},
		{"gopher://example.com/", `scheme "gopher"`},
		// Allowed.
		{"http://10.0.0.5:8080/{callable}", ""},
		{"http://172.16.3.4/", ""},
		{"http://192.168.1.10/", ""},
		{"http://100.64.0.1/", ""},
		{"http://[fd12:3456::1]/", ""},
		{"https://payments.internal:8443/steps/{callable}", ""},
		{"http://payments/", ""},
		{"https://203.0.113.7/", ""},
		{"http://3405803783/", ""}, // 203.0.113.7 as a number: judged, allowed
		{"http://api.v2/", ""},
	} {
		err := strict.Check(tc.url)
		switch {
		case tc.rule == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.url, err)
		case tc.rule != "" && err == nil:
			t.Errorf("%s: allowed, want refused as %s", tc.url, tc.rule)
		case tc.rule != "" && !strings.Contains(err.Error(), tc.rule):
			t.Errorf("%s: %v, want the rule %q", tc.url, err, tc.rule)
		case tc.rule != "" && !strings.Contains(err.Error(), callout.URLPolicyKey):
			t.Errorf("%s: %v does not name %s", tc.url, err, callout.URLPolicyKey)
		}
	}
	var nilPolicy *callout.URLPolicy
	if err := nilPolicy.Check("http://169.254.169.254/"); err != nil {
		t.Errorf("a nil policy refused: %v", err)
	}
}

func TestURLPolicyMessageNamesTheFix(t *testing.T) {
	t.Parallel()
	err := (&callout.URLPolicy{}).Check("http://2852039166/x")
	want := "2852039166 (169.254.169.254) is a cloud metadata address, refused by the handler URL policy (worker.callout.url_policy); allow it with allow_cidrs"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	var re *callout.URLRefusedError
	if !errors.As(err, &re) {
		t.Fatalf("%T is not a *URLRefusedError", err)
	}
	err = (&callout.URLPolicy{}).Check("http://169.254.1.1/")
	if want := "169.254.1.1 is a link-local address, refused by the handler URL policy (worker.callout.url_policy); allow it with allow_cidrs"; err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestURLPolicyAllowances(t *testing.T) {
	t.Parallel()
	p := &callout.URLPolicy{
		AllowLoopback:  true,
		AllowHosts:     []string{"metadata.google.internal", "*.corp.example", "0x7f000001"},
		AllowCIDRs:     []netip.Prefix{netip.MustParsePrefix("169.254.10.0/24"), netip.MustParsePrefix("fd00:ec2::254/128")},
		AllowedSchemes: []string{"https", "http"},
	}
	for _, u := range []string{
		"http://127.0.0.1:8080/", "http://[::1]/", "http://localhost/", "http://2130706433/",
		"http://metadata.google.internal/", "http://a.b.corp.example/", "http://0x7f000001/",
		"http://169.254.10.7/", "http://[::ffff:169.254.10.7]/", "http://[fd00:ec2::254]/",
	} {
		if err := p.Check(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://169.254.169.254/", "http://169.254.11.1/", "http://0.0.0.0/"} {
		if err := p.Check(u); err == nil {
			t.Errorf("%s: allowed", u)
		}
	}
	httpsOnly := &callout.URLPolicy{AllowedSchemes: []string{"https"}}
	if err := httpsOnly.Check("http://payments/"); err == nil || !strings.Contains(err.Error(), "allowed_schemes") {
		t.Errorf("http with https only: %v", err)
	}
	if err := p.CheckAddr(netip.MustParseAddr("169.254.169.254")); err == nil {
		t.Error("CheckAddr allowed the metadata address")
	}
}

// An endpoint whose address the policy denies (a row stored before the
// policy, or a name that resolves there) is refused when dialled, over
// HTTP+JSON and Connect alike: the step fails for good naming the rule, the
// service gets no request, and the breaker does not count it.
func TestURLPolicyRefusesAtDialTime(t *testing.T) {
	t.Parallel()
	srv, hits := countingServer(t)
	reg := callout.NewRegistry(callout.RegistryConfig{URLPolicy: &callout.URLPolicy{}, Breaker: callout.BreakerSettings{ConsecutiveFailures: 1}})
	t.Cleanup(reg.Close)
	if err := reg.Set([]callout.Endpoint{
		{Pattern: "p.*", URL: srv.URL + "/run"},
		{Pattern: "c.*", URL: srv.URL, Protocol: callout.ProtocolConnect},
		{Pattern: "g.*", URL: srv.URL, Protocol: callout.ProtocolGRPC},
	}); err != nil {
		t.Fatal(err)
	}
	for _, callable := range []string{"p.one", "p.one", "c.one", "g.one"} {
		inv, ok := reg.Resolve("", callable)
		if !ok {
			t.Fatal("not resolved")
		}
		res := inv.Invoke(t.Context(), httpTestEnvelope("0190d5a1-0000-7000-8000-000000000001", callable))
		wantFailure(t, callable, res, callout.ErrorTypeURLRefused, false, 0, "127.0.0.1 is a loopback address", "refused by the handler URL policy", "allow_loopback")
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the service got %d requests", n)
	}
	for _, st := range reg.Endpoints() {
		if st.BreakerState != "closed" || st.Faults != 0 {
			t.Errorf("%s: breaker %s with %d faults; a refusal is not the endpoint's fault", st.Pattern, st.BreakerState, st.Faults)
		}
	}
}

// A host name is not resolved at registration; what it resolves to when
// the runner connects is judged, so DNS rebinding cannot pass. allow_loopback
// and allow_cidrs let the same call through.
func TestURLPolicyJudgesResolvedAddress(t *testing.T) {
	t.Parallel()
	srv, hits := countingServer(t)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	target := "http://" + net.JoinHostPort("handler.rebind.test", port) + "/run"
	resolver := callouttest.Resolver(t, netip.MustParseAddr("127.0.0.1"))

	call := func(p *callout.URLPolicy) contracts.StepResult {
		t.Helper()
		if err := p.Check(target); err != nil {
			t.Fatalf("registration check refused %s: %v", target, err)
		}
		client := callout.NewClient(callout.NewTransport(callout.TransportOptions{URLPolicy: p, Resolver: resolver}))
		t.Cleanup(client.CloseIdleConnections)
		reg := callout.NewRegistry(callout.RegistryConfig{URLPolicy: p, Client: client})
		t.Cleanup(reg.Close)
		if err := reg.Set([]callout.Endpoint{{Pattern: "p.*", URL: target}}); err != nil {
			t.Fatal(err)
		}
		inv, _ := reg.Resolve("", "p.one")
		return inv.Invoke(t.Context(), httpTestEnvelope("0190d5a1-0000-7000-8000-000000000001", "p.one"))
	}
	res := call(&callout.URLPolicy{})
	wantFailure(t, "strict", res, callout.ErrorTypeURLRefused, false, 0, "127.0.0.1 is a loopback address", "handler.rebind.test")
	if n := hits.Load(); n != 0 {
		t.Fatalf("the service got %d requests", n)
	}
	if res := call(&callout.URLPolicy{AllowLoopback: true}); !res.Success {
		t.Fatalf("allow_loopback: %+v", res.Error)
	}
	if res := call(&callout.URLPolicy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}); !res.Success {
		t.Fatalf("allow_cidrs: %+v", res.Error)
	}
	if res := call(&callout.URLPolicy{AllowHosts: []string{"handler.rebind.test"}}); !res.Success {
		t.Fatalf("allow_hosts: %+v", res.Error)
	}
	if n := hits.Load(); n != 3 {
		t.Fatalf("the service got %d requests, want 3", n)
	}
}

func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	hits := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(`{"success":true}`))
	}))
	t.Cleanup(srv.Close)
	return srv, hits
}

// The reply of a service that is not a handler is kept apart from the
// message, so the API can hide it.
func TestClassifyKeepsExcerptInMetadata(t *testing.T) {
	t.Parallel()
	res := callout.ClassifyResponse(callout.HTTPResponse{Endpoint: "http://x", StatusCode: 404, Body: []byte("ami-id\ninstance-id\n")}, time.Now())
	if strings.Contains(res.Error.Message, "ami-id") {
		t.Fatalf("message quotes the reply: %q", res.Error.Message)
	}
	var m map[string]any
	if err := json.Unmarshal(res.Metadata, &m); err != nil {
		t.Fatal(err)
	}
	if m[callout.MetadataResponseExcerpt] != "ami-id\ninstance-id" {
		t.Fatalf("metadata %s", res.Metadata)
	}
	if res.Error.ErrorType != contracts.ErrorTypeHandler {
		t.Fatalf("type %s", res.Error.ErrorType)
	}
}
