package pgtest

import (
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Proxy is a TCP proxy on 127.0.0.1 in front of a database, for tests of
// database outages. Connect through [Proxy.URL]; [Proxy.Cut] makes the
// database unreachable as a crash or a network failure does (open
// connections are reset, new ones refused) and [Proxy.Restore] brings it
// back. Its methods are safe for concurrent use.
type Proxy struct {
	t       testing.TB
	network string // of the database: "tcp" or "unix"
	target  string
	addr    string // the proxy's listening address
	url     string

	mu    sync.Mutex
	ln    net.Listener // nil while cut
	conns map[net.Conn]struct{}
	held  bool // replies are dropped (see Hold)
	wg    sync.WaitGroup
}

// NewProxy starts a proxy in front of the database of dbURL (from [URL],
// say). It stops, closing every connection, when t ends.
func NewProxy(t testing.TB, dbURL string) *Proxy {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dbURL)
	if err != nil {
		t.Fatalf("pgtest: proxy: parsing %s: %v", redact(dbURL), err)
	}
	p := &Proxy{t: t, network: "tcp", target: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), conns: map[net.Conn]struct{}{}}
	if strings.HasPrefix(cfg.Host, "/") {
		p.network, p.target = "unix", cfg.Host+"/.s.PGSQL."+strconv.Itoa(int(cfg.Port))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: proxy: %v", err)
	}
	p.addr = ln.Addr().String()
	p.url, err = viaAddr(dbURL, p.addr)
	if err != nil {
		_ = ln.Close()
		t.Fatalf("pgtest: proxy: %v", err)
	}
	p.start(ln)
	t.Cleanup(p.Cut)
	return p
}

// URL returns the URL of the database through the proxy.
func (p *Proxy) URL() string { return p.url }

// Cut makes the database unreachable: new connections are refused and
// open ones are reset. It returns once every connection is closed. Cutting
// a cut proxy does nothing.
func (p *Proxy) Cut() {
	p.mu.Lock()
	ln, conns := p.ln, p.conns
	p.ln, p.conns, p.held = nil, map[net.Conn]struct{}{}, false
	p.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for c := range conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, not an orderly close
		}
		_ = c.Close()
	}
	p.wg.Wait()
}

// Hold drops what the database sends, on every connection, until [Proxy.Cut]:
// requests still arrive, so a statement sent meanwhile runs and commits but
// its client never hears back, as when a connection dies right after a
// commit. The client waits for the reply until Cut resets its connection.
func (p *Proxy) Hold() {
	p.mu.Lock()
	p.held = true
	p.mu.Unlock()
}

func (p *Proxy) holding() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// Restore makes the database reachable again at the same address.
func (p *Proxy) Restore() {
	p.t.Helper()
	p.mu.Lock()
	up := p.ln != nil
	p.mu.Unlock()
	if up {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("pgtest: proxy: listening again on %s: %v", p.addr, err)
	}
	p.start(ln)
}

func (p *Proxy) start(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.wg.Add(1)
	p.mu.Unlock()
	go p.serve(ln)
}

func (p *Proxy) serve(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.ln != ln {
			p.mu.Unlock()
			_ = c.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.pipe(c)
	}
}

// pipe copies between a client connection and a new one to the database
// until either side ends or the proxy is cut.
func (p *Proxy) pipe(c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout(p.network, p.target, 10*time.Second)
	p.mu.Lock()
	_, open := p.conns[c]
	if err == nil && open {
		p.conns[up] = struct{}{}
	}
	p.mu.Unlock()
	if err != nil || !open {
		_ = c.Close()
		if up != nil {
			_ = up.Close()
		}
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(up, c)
		_ = up.Close()
	}()
	p.replies(c, up)
	_ = c.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// replies copies the database's side to the client, dropping it while held.
func (p *Proxy) replies(c, up net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 && !p.holding() {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// viaAddr returns dbURL with its host and port replaced by addr.
func viaAddr(dbURL, addr string) (string, error) {
	host, port, _ := net.SplitHostPort(addr)
	if strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://") {
		u, err := url.Parse(dbURL)
		if err != nil {
			return "", errors.New("parsing " + redact(dbURL) + ": " + err.Error())
		}
		u.Host = addr
		q := u.Query()
		q.Del("host")
		q.Del("hostaddr")
		q.Del("port")
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	// In keyword/value form the last occurrence of a keyword wins.
	return dbURL + " host=" + host + " hostaddr=" + host + " port=" + port, nil
}
