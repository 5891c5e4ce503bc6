package dev

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/procgroup"
	"github.com/tasker-runner/tasker-runner/contracts/webhook"
)

// devLanguage is one example handler service (examples/handlers/<dir>) and
// the steps of the example workflows it runs in the `dev` demo.
type devLanguage struct {
	key      string // its directory under examples/handlers, and the --chaos value
	label    string // for people: "Python"
	step     string // the order-fulfilment step it runs
	callable string // that step's callable, routed to this service
	// more are the steps of the approval and batch ETL workflows it runs.
	more []devRoute
	// probe succeeds when the runtime is there.
	probe   []string
	install string
	// prepare builds what the service needs (into tmp) and returns the
	// command that runs it, in dir.
	prepare func(ctx context.Context, dir, tmp string) ([]string, error)
}

// devRoute is a template step and its callable.
type devRoute struct{ step, callable string }

// devLanguages: validate in Python, reserve stock in Ruby, charge in Go,
// ship in TypeScript; route the approval in Python, approve in Ruby and Go,
// finalize in TypeScript; analyze the rows in Go, transform them in Python,
// aggregate in Ruby. Every example implements every callable.
var devLanguages = []devLanguage{
	{
		key: "python", label: "Python", step: "validate_order", callable: "order_fulfillment.validate_order",
		more:    []devRoute{{"route_approval", "approval.route"}, {"transform_rows_*", "etl.transform"}},
		probe:   []string{"python3", "-c", "import http.server, hmac"},
		install: "apt-get install python3 (any Python 3.9+)",
		prepare: func(context.Context, string, string) ([]string, error) { return []string{"python3", "handler.py"}, nil },
	},
	{
		key: "ruby", label: "Ruby", step: "reserve_stock", callable: "order_fulfillment.reserve_stock",
		more: []devRoute{{"auto_approve", "approval.auto_approve"}, {"manager_approval", "approval.manager_approval"},
			{"aggregate_rows", "etl.aggregate"}},
		probe:   []string{"ruby", "-e", `require "webrick"; require "openssl"`},
		install: "apt-get install ruby ruby-webrick (or Ruby 3.0+ and gem install webrick)",
		prepare: func(context.Context, string, string) ([]string, error) { return []string{"ruby", "handler.rb"}, nil },
	},
	{
		key: "go", label: "Go", step: "charge_payment", callable: "order_fulfillment.charge",
		more:    []devRoute{{"finance_review", "approval.finance_review"}, {"analyze_rows", "etl.analyze"}},
		probe:   []string{"go", "version"},
		install: "the Go toolchain (go on PATH)",
		prepare: prepareGo,
	},
	{
		key: "typescript", label: "TypeScript", step: "ship_order", callable: "order_fulfillment.ship",
		more:    []devRoute{{"finalize_approval", "approval.finalize"}},
		probe:   []string{"node", "--version"},
		install: "apt-get install nodejs npm (Node.js 18+; npm ci needs the npm registry the first time)",
		prepare: prepareTypeScript,
	},
}

// routes returns every step the language runs, the order's first.
func (l devLanguage) routes() []devRoute {
	return append([]devRoute{{l.step, l.callable}}, l.more...)
}

// steps names the steps the language runs, for people.
func (l devLanguage) steps() string {
	var names []string
	for _, r := range l.routes() {
		names = append(names, r.step)
	}
	return strings.Join(names, ", ")
}

func devLanguageByKey(key string) (devLanguage, bool) {
	for _, l := range devLanguages {
		if l.key == key {
			return l, true
		}
	}
	return devLanguage{}, false
}

// childEnv quiets the runtimes' extras (bytecode files, colours).
var childEnv = []string{"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "NO_COLOR=1", "NODE_DISABLE_COLORS=1"}

// prepareGo builds the Go example into tmp: the binary is then the service
// process itself (its pid is the one to kill), not a child of `go run`.
func prepareGo(ctx context.Context, dir, tmp string) ([]string, error) {
	bin := filepath.Join(tmp, "go-handler")
	if _, err := runQuiet(ctx, dir, 3*time.Minute, "go", "build", "-o", bin, "."); err != nil {
		return nil, err
	}
	return []string{bin}, nil // start adds --addr
}

// prepareTypeScript installs the pinned compiler with npm ci when
// package.json or its lock file changed since the last install (the same
// stamp as the polyglot tests), and compiles into tmp, not dist/, so that a
// test compiling dist/ at the same time cannot pull files from under us.
func prepareTypeScript(ctx context.Context, dir, tmp string) ([]string, error) {
	h := sha256.New()
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		h.Write(b)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	shared, unlock, err := procgroup.LockDir(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("locking %s for npm ci: %w", dir, err)
	}
	defer unlock()
	stamp := filepath.Join(dir, "node_modules", ".tasker-runner-lock-sha256")
	if got, _ := os.ReadFile(stamp); string(got) != sum {
		if _, err := runQuiet(ctx, dir, 4*time.Minute, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"); err != nil {
			return nil, err
		}
		if err := os.WriteFile(stamp, []byte(sum), 0o644); err != nil {
			return nil, err
		}
	}
	shared() // installed: others may compile too, none may reinstall
	out := filepath.Join(tmp, "ts-dist")
	if _, err := runQuiet(ctx, dir, 2*time.Minute, "node", filepath.Join("node_modules", "typescript", "bin", "tsc"), "-p", ".", "--outDir", out, "--sourceMap", "false"); err != nil {
		return nil, err
	}
	// The compiled files are ES modules; outside the example's directory
	// Node needs to be told so.
	if err := os.WriteFile(filepath.Join(out, "package.json"), []byte(`{"type": "module"}`+"\n"), 0o644); err != nil {
		return nil, err
	}
	return []string{"node", filepath.Join(out, "handler.js")}, nil
}

// runQuiet runs a build command and returns its output; the error carries
// the output's tail.
func runQuiet(ctx context.Context, dir string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), childEnv...)
	procgroup.Set(cmd)
	cmd.Cancel = func() error { return procgroup.Kill(cmd.Process) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s (in %s): %w\n%s", strings.Join(args, " "), dir, err, tail(string(out), 2000))
	}
	return string(out), nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// devService is one example handler service running as a child process
// (in its own process group) on a loopback port.
type devService struct {
	lang   devLanguage
	dir    string
	argv   []string
	secret string
	url    string // http://127.0.0.1:port

	mu      sync.Mutex
	proc    *devProcess // nil while not running
	stopped bool        // stop was called: not to be restarted
}

// devProcess is one run of a service: the process and what it printed.
type devProcess struct {
	cmd  *exec.Cmd
	logs *tailBuffer
	done chan struct{} // closed once it has exited
	err  error         // from Wait, once done is closed
}

// tailBuffer keeps the last bytes a child printed, for error messages.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

const tailBytes = 16 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2*tailBytes {
		t.b = append(t.b[:0], t.b[len(t.b)-tailBytes:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// listeningLine finds the port in the examples' start-up line: "listening on
// http://127.0.0.1:PORT" (Python, Ruby, TypeScript) or slog's "msg=listening
// addr=127.0.0.1:PORT" (Go).
var listeningLine = regexp.MustCompile(`listening(?: on http://| addr=)\S*?:(\d+)\b`)

// start runs the service on port ("0": any free one) and waits until it
// answers GET /health. It fails when the process exits first, or after
// timeout.
func (s *devService) start(ctx context.Context, port string, timeout time.Duration) error {
	argv := s.argv
	if s.lang.key == "go" {
		argv = append(argv[:len(argv):len(argv)], "--addr", "127.0.0.1:"+port) // it reads no HOST
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), childEnv...)
	cmd.Env = append(cmd.Env, "HOST=127.0.0.1", "PORT="+port, "TASKER_WEBHOOK_SECRET="+s.secret)
	procgroup.Set(cmd)
	p := &devProcess{cmd: cmd, logs: &tailBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the %s handler service (%s): %w", s.lang.label, strings.Join(argv, " "), err)
	}
	go func() { // owned by p: ends when the process exits, which stop makes sure of
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.proc, s.stopped = p, false
	s.mu.Unlock()

	fail := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		_ = s.stop(2 * time.Second)
		return fmt.Errorf("the %s handler service (%s, in %s) %s; its output:\n%s", s.lang.label, strings.Join(argv, " "), s.dir, msg, tail(p.logs.String(), 4000))
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	url := ""
	for {
		select {
		case <-p.done:
			return fail("exited before answering: %v", p.err)
		case <-deadline.C:
			return fail("did not answer GET /health within %s", timeout)
		case <-ctx.Done():
			_ = s.stop(2 * time.Second)
			return ctx.Err()
		case <-tick.C:
		}
		if url == "" {
			m := listeningLine.FindStringSubmatch(p.logs.String())
			if m == nil {
				continue
			}
			url = "http://127.0.0.1:" + m[1]
		}
		resp, err := client.Get(url + "/health")
		if err != nil {
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			s.mu.Lock()
			s.url = url
			s.mu.Unlock()
			return nil
		}
	}
}

// pid is the running process's id, or 0.
func (s *devService) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// current returns the running process (nil if none), whether stop was
// called, and the URL.
func (s *devService) current() (*devProcess, bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc, s.stopped, s.url
}

// port is the service's port (the part after the last colon of its URL).
func (s *devService) port() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url[strings.LastIndexByte(s.url, ':')+1:]
}

// kill ends the service at once (SIGKILL to its process group), as a crash
// would, and waits for it.
func (s *devService) kill() error {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	err := procgroup.Kill(p.cmd.Process)
	<-p.done
	return err
}

// stop asks the service to stop (SIGTERM to its process group), waits up to
// grace, then kills the group.
func (s *devService) stop(grace time.Duration) error {
	s.mu.Lock()
	p := s.proc
	s.proc, s.stopped = nil, true
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	_ = procgroup.Term(p.cmd.Process)
	select {
	case <-p.done:
		// Children it left behind in its group go too.
		_ = procgroup.Kill(p.cmd.Process)
		return nil
	case <-time.After(grace):
	}
	err := procgroup.Kill(p.cmd.Process)
	<-p.done
	return errors.Join(fmt.Errorf("the %s handler service did not stop within %s of SIGTERM: killed; its last output:\n%s",
		s.lang.label, grace, tail(p.logs.String(), 2000)), err)
}

// devServices prepares and starts the example handler services, each on
// its own goroutine, while the database starts.
type devServices struct {
	tmp       string                 // builds and secrets; removed by close
	ready     chan struct{}          // closed once every language is started or has failed
	wg        sync.WaitGroup         // the start-up goroutines
	supervise sync.WaitGroup         // the supervisors (see keepUp)
	ctx       context.Context        // cancelled by close
	cancel    context.CancelFunc     //
	services  map[string]*devService // by language key: those that started
	failed    map[string]error       // by language key: those that did not, and why
	mu        sync.Mutex
}

// startDevServices starts preparing every language's service in examples.
// close must be called: it stops whatever was started and removes tmp.
func startDevServices(ctx context.Context, examples string) (*devServices, error) {
	tmp, err := os.MkdirTemp("", "tasker-dev-")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary directory for the handler services: %w", err)
	}
	// Recorded like pgcluster's owner.pid, so that tests can tell whose
	// directory this is.
	if err := os.WriteFile(filepath.Join(tmp, "owner.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return nil, errors.Join(err, os.RemoveAll(tmp))
	}
	ctx, cancel := context.WithCancel(ctx)
	d := &devServices{tmp: tmp, ready: make(chan struct{}), ctx: ctx, cancel: cancel,
		services: map[string]*devService{}, failed: map[string]error{}}
	for _, l := range devLanguages {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			s, err := startDevService(ctx, l, filepath.Join(examples, "handlers", l.key), tmp)
			d.mu.Lock()
			defer d.mu.Unlock()
			if err != nil {
				d.failed[l.key] = err
				return
			}
			d.services[l.key] = s
		}()
	}
	go func() { // owned by d: ends when the start-up goroutines do
		d.wg.Wait()
		close(d.ready)
	}()
	return d, nil
}

func startDevService(ctx context.Context, l devLanguage, dir, tmp string) (*devService, error) {
	probe := exec.CommandContext(ctx, l.probe[0], l.probe[1:]...)
	probe.Env = append(os.Environ(), childEnv...)
	if out, err := probe.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("its runtime is missing (`%s` failed: %v: %s); install it (%s), or run `bash .ci/ensure-runtimes %s` as root",
			strings.Join(l.probe, " "), err, tail(string(out), 300), l.install, l.key)
	}
	argv, err := l.prepare(ctx, dir, tmp)
	if err != nil {
		return nil, fmt.Errorf("building it failed: %w", err)
	}
	s := &devService{lang: l, dir: dir, argv: argv, secret: webhook.NewSecret()}
	if err := s.start(ctx, "0", 60*time.Second); err != nil {
		return nil, err
	}
	return s, nil
}

// keepUp restarts s, after a pause, whenever it dies without having been
// asked to stop (killed by hand, or by dev --chaos), on the same port when
// it can. say reports what happens; moved is called when s had to move to
// another port (its endpoint must follow).
func (d *devServices) keepUp(s *devService, pause time.Duration, say func(format string, args ...any), moved func(*devService)) {
	d.supervise.Add(1)
	go func() {
		defer d.supervise.Done()
		for {
			p, stopped, url := s.current()
			if p == nil || stopped {
				return
			}
			select {
			case <-p.done:
			case <-d.ctx.Done():
				return
			}
			if _, stopped, _ := s.current(); stopped || d.ctx.Err() != nil {
				return
			}
			port := s.port()
			say("  ✗ the %s handler service (pid %d) died (%v): restarting it on port %s in %s\n", s.lang.label, p.cmd.Process.Pid, p.err, port, pause)
			for {
				select {
				case <-time.After(pause):
				case <-d.ctx.Done():
					return
				}
				err := s.start(d.ctx, port, 60*time.Second)
				if d.ctx.Err() != nil {
					return
				}
				if err == nil {
					break
				}
				say("  ✗ restarting the %s handler service failed, trying any free port: %v\n", s.lang.label, err)
				port = "0"
			}
			_, _, now := s.current()
			if now != url {
				moved(s)
			}
			say("  ✓ the %s handler service is back: pid %d, %s\n", s.lang.label, s.pid(), now)
		}
	}()
}

// wait waits until every service has started or failed.
func (d *devServices) wait(ctx context.Context) error {
	select {
	case <-d.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// get returns the started service of a language.
func (d *devServices) get(key string) (*devService, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.services[key]
	return s, ok
}

// failure returns why a language's service did not start.
func (d *devServices) failure(key string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failed[key]
}

// secretFile writes a service's signing secret where the endpoint's
// secret_ref ("file:...") points, so the database holds no secret.
func (d *devServices) secretFile(s *devService) (string, error) {
	p := filepath.Join(d.tmp, s.lang.key+".secret")
	return p, os.WriteFile(p, []byte(s.secret+"\n"), 0o600)
}

// close stops the start-up, stops every service (SIGTERM, then SIGKILL to
// its process group) and removes the temporary directory.
func (d *devServices) close() error {
	d.cancel()
	d.wg.Wait()
	d.supervise.Wait()
	var errs []error
	d.mu.Lock()
	services := d.services
	d.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, s := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.stop(5 * time.Second); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	<-d.ready
	if err := os.RemoveAll(d.tmp); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", d.tmp, err))
	}
	return errors.Join(errs...)
}
