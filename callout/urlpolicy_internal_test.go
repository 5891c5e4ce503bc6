package callout

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// Through a proxy the dialler only sees the proxy, so the handler's host is
// judged when the proxy is chosen; the proxy itself (chosen by the
// operator) may be on loopback.
func TestURLPolicyProxy(t *testing.T) {
	t.Parallel()
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		_, _ = io.WriteString(w, "via proxy to "+r.URL.Host)
	}))
	t.Cleanup(proxy.Close)
	pu, _ := url.Parse(proxy.URL)
	policy := &URLPolicy{}
	tr := NewTransport(TransportOptions{URLPolicy: policy})
	tr.Proxy = policy.proxy(http.ProxyURL(pu), nil) // as from the environment

	client := NewClient(tr)
	t.Cleanup(client.CloseIdleConnections)

	for _, target := range []string{"http://169.254.169.254/latest/", "http://2852039166/", "http://localhost/", "http://[::ffff:127.0.0.1]/"} {
		resp, err := client.Get(target)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: went through the proxy", target)
			continue
		}
		if !strings.Contains(err.Error(), "refused by the handler URL policy") {
			t.Errorf("%s: %v", target, err)
		}
	}
	if n := proxied.Load(); n != 0 {
		t.Fatalf("the proxy got %d requests", n)
	}
	resp, err := client.Get("http://10.1.2.3:8080/run")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "via proxy to 10.1.2.3:8080" {
		t.Fatalf("got %q", body)
	}
}
