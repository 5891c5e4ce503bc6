package callout

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"
)

// TransportOptions tunes the HTTP transport behind [HTTPInvoker]. The zero
// value gives the defaults listed on each field.
type TransportOptions struct {
	// MaxIdleConnsPerHost is the keep-alive pool per handler host; default
	// 512, so a busy runner reuses connections instead of dialling. Keep it
	// at least the calls in flight to one host: with fewer, connections are
	// closed and redialled under load (each closed one sits in TIME_WAIT).
	MaxIdleConnsPerHost int
	// DialTimeout bounds connecting to a handler; default 5s.
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake; default 10s.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout caps the wait for a response's headers after the
	// request is written, as a safety net for calls without a deadline (the
	// step deadline normally ends a call much earlier); default 1h.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes pooled connections idle this long; default 90s.
	IdleConnTimeout time.Duration
	// MaxResponseHeaderBytes limits response headers; default 64 KiB.
	MaxResponseHeaderBytes int64
	// TLSClientConfig, when set, is used for https endpoints (custom roots,
	// client certificates). HTTP/2 is still negotiated when offered.
	TLSClientConfig *tls.Config
	// URLPolicy, when set, judges every connection's address as it is
	// dialled, after name resolution (so DNS rebinding cannot pass), and
	// the handler's host when an environment proxy carries the request
	// (see [URLPolicy]). nil: no check.
	URLPolicy *URLPolicy
	// Resolver resolves handler host names; default the system's.
	Resolver *net.Resolver
}

// Transport defaults.
const (
	DefaultMaxIdleConnsPerHost    = 512
	defaultDialTimeout            = 5 * time.Second
	defaultTLSHandshakeTimeout    = 10 * time.Second
	defaultResponseHeaderTimeout  = time.Hour
	defaultIdleConnTimeout        = 90 * time.Second
	defaultMaxResponseHeaderBytes = 64 << 10
)

// NewTransport returns an [http.Transport] for calling handlers: a large
// keep-alive pool, HTTP/2 when a TLS endpoint offers it (ALPN), bounded dial,
// handshake and header waits, proxies from the environment, and the
// [TransportOptions.URLPolicy] check on every connection. Share one
// transport between endpoints: the pool is per host anyway.
func NewTransport(o TransportOptions) *http.Transport {
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = defaultDialTimeout
	}
	if o.TLSHandshakeTimeout <= 0 {
		o.TLSHandshakeTimeout = defaultTLSHandshakeTimeout
	}
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = defaultResponseHeaderTimeout
	}
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = defaultIdleConnTimeout
	}
	if o.MaxResponseHeaderBytes <= 0 {
		o.MaxResponseHeaderBytes = defaultMaxResponseHeaderBytes
	}
	dialer := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second, Resolver: o.Resolver}
	t := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           0, // no global cap: the per-host pool bounds it
		MaxIdleConnsPerHost:    o.MaxIdleConnsPerHost,
		IdleConnTimeout:        o.IdleConnTimeout,
		TLSHandshakeTimeout:    o.TLSHandshakeTimeout,
		ResponseHeaderTimeout:  o.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: o.MaxResponseHeaderBytes,
	}
	if o.TLSClientConfig != nil {
		t.TLSClientConfig = o.TLSClientConfig.Clone()
	}
	if o.URLPolicy != nil {
		t.DialContext = o.URLPolicy.dialContext(dialer)
		t.Proxy = o.URLPolicy.proxy(http.ProxyFromEnvironment, o.Resolver)
	}
	return t
}

// NewClient wraps a transport in an [http.Client] suited to handler calls:
// no client-wide timeout (each call carries its own deadline) and redirects
// are not followed (a POST must not silently turn into a GET; a 3xx answer
// is reported as a permanent failure naming the endpoint).
func NewClient(t http.RoundTripper) *http.Client {
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

var sharedClient = sync.OnceValue(func() *http.Client {
	return NewClient(NewTransport(TransportOptions{}))
})

// SharedClient is the client every [HTTPInvoker] uses unless configured
// otherwise: one transport with default [TransportOptions] for the process.
func SharedClient() *http.Client { return sharedClient() }
