package polyglot

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/callout/conformance"
)

// readmeHandlers are the handlers of README.md's "Write a handler in 5
// minutes", by the language of their code block.
var readmeHandlers = []struct {
	lang, fence, file string
	runtime           string // the example whose runtime it needs; "" for Go
}{
	{"python", "python", "hello.py", "python"},
	{"ruby", "ruby", "hello.rb", "ruby"},
	{"typescript", "ts", "hello.ts", "typescript"},
	{"go", "go", "hello.go", ""},
}

// readmeSnippet returns the first code block of the given fence in the
// README section that starts with heading.
func readmeSnippet(t *testing.T, readme, heading, fence string) string {
	t.Helper()
	_, section, ok := strings.Cut(readme, heading)
	if !ok {
		t.Fatalf("README.md has no %q", heading)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	m := regexp.MustCompile("(?s)```" + fence + "\n(.*?)```\n").FindStringSubmatch(section)
	if m == nil {
		t.Fatalf("README.md's %q has no ```%s block", heading, fence)
	}
	return m[1]
}

// TestREADMEHandlersConform: the four handlers README.md tells a new user to
// write, as printed there, pass the conformance suite (batched calls
// included), as the README says they do with `tasker-runner conformance
// --batch`.
func TestREADMEHandlersConform(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	if !strings.Contains(readme, "bin/tasker-runner conformance --url http://127.0.0.1:8099/ --batch") {
		t.Fatal("README.md no longer runs the conformance suite against its handlers: update this test")
	}
	for _, h := range readmeHandlers {
		t.Run(h.lang, func(t *testing.T) {
			t.Parallel()
			code := readmeSnippet(t, readme, "## Write a handler in 5 minutes", h.fence)
			if !strings.Contains(code, "8099") {
				t.Fatalf("the %s handler does not listen on 8099:\n%s", h.lang, code)
			}
			port := freePort(t)
			dir := t.TempDir()
			src := filepath.Join(dir, h.file)
			if err := os.WriteFile(src, []byte(strings.ReplaceAll(code, "8099", strconv.Itoa(port))), 0o644); err != nil {
				t.Fatal(err)
			}
			var args []string
			switch h.lang {
			case "python":
				languages[0].ready(t)
				args = []string{"python3", src}
			case "ruby":
				languages[1].ready(t)
				args = []string{"ruby", src}
			case "typescript":
				// The README runs it with tsx from npm; here the example's
				// pinned compiler turns it into JavaScript.
				ts := languages[2].ready(t)
				run(t, dir, 2*time.Minute, "node", filepath.Join(ts, "node_modules", "typescript", "bin", "tsc"),
					"--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext", "--skipLibCheck",
					"--typeRoots", filepath.Join(ts, "node_modules", "@types"), "--types", "node", "--outDir", dir, src)
				args = []string{"node", filepath.Join(dir, "hello.js")}
			case "go":
				goTool, err := exec.LookPath("go")
				if err != nil {
					t.Skipf("no go command: %v", err)
				}
				run(t, dir, 2*time.Minute, goTool, "build", "-o", filepath.Join(dir, "hello"), src)
				args = []string{filepath.Join(dir, "hello")}
			}
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), childEnv...)
			logs := &lockedBuffer{}
			cmd.Stdout, cmd.Stderr = logs, logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-done
				if t.Failed() {
					t.Logf("%s output:\n%s", h.file, logs)
				}
			})
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			deadline := time.Now().Add(30 * time.Second)
			for {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err == nil {
					_ = c.Close()
					break
				}
				select {
				case <-done:
					t.Fatalf("%s exited before listening:\n%s", h.file, logs)
				case <-time.After(20 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s does not listen on %s after 30s: %v", h.file, addr, err)
				}
			}

			rep, err := conformance.Run(t.Context(), conformance.Config{URL: "http://" + addr + "/", Batch: true, Context: []byte(`{"name": "Ada"}`)})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range rep.Cases {
				switch {
				case c.Status == conformance.Pass:
				case c.Status == conformance.Skip && (signatureCases[c.Name] || c.Name == "decision-outcome" || c.Name == "batch-outcome" || c.Name == "yields"):
				default:
					t.Errorf("%s %s: %s", c.Status, c.Name, c.Reason)
				}
			}
			if r := rep.Cases[0]; !strings.Contains(r.Reason, "answered 200 OK: success") {
				t.Errorf("minimal-envelope: %s", r.Reason)
			}
		})
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
