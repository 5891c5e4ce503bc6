package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

func embeddedMigrations(t *testing.T) []store.Migration {
	t.Helper()
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no embedded migrations")
	}
	return ms
}

// checkStatus checks the output of `migrate status`: every migration in
// state want ("applied" or "pending"), and the summary line.
func checkStatus(t *testing.T, r cliResult, want string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("migrate status: %v", r)
	}
	ms := embeddedMigrations(t)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != len(ms)+2 {
		t.Fatalf("want a header, %d migrations and a summary, got:\n%s", len(ms), r.stdout)
	}
	if !regexp.MustCompile(`^VERSION\s+NAME\s+STATE\s+APPLIED AT$`).MatchString(lines[0]) {
		t.Errorf("header: %q", lines[0])
	}
	at := `-`
	if want == "applied" {
		at = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`
	}
	for i, m := range ms {
		re := regexp.MustCompile(fmt.Sprintf(`^%04d\s+%s\s+%s\s+%s$`, m.Version, regexp.QuoteMeta(m.Name), want, at))
		if !re.MatchString(lines[i+1]) {
			t.Errorf("migration %04d_%s: line %q does not match %s", m.Version, m.Name, lines[i+1], re)
		}
	}
	summary := fmt.Sprintf("%d applied, 0 pending", len(ms))
	if want == "pending" {
		summary = fmt.Sprintf("0 applied, %d pending", len(ms))
	}
	if got := lines[len(lines)-1]; got != summary {
		t.Errorf("summary: got %q, want %q", got, summary)
	}
}

func TestMigrateUpOnEmptyDatabase(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DATABASE_URL": pgtest.EmptyURL(t)}

	checkStatus(t, runCLI(t, vars, "migrate", "status"), "pending")

	r := runCLI(t, vars, "migrate", "up")
	var want strings.Builder
	for _, m := range embeddedMigrations(t) {
		fmt.Fprintf(&want, "applied %04d_%s\n", m.Version, m.Name)
	}
	if r.code != 0 || r.stdout != want.String() {
		t.Fatalf("first migrate up: want exit 0 and\n%s\ngot %v", want.String(), r)
	}

	r = runCLI(t, vars, "migrate", "up")
	if r.code != 0 || r.stdout != "database is up to date\n" {
		t.Fatalf("second migrate up: want exit 0 and \"database is up to date\", got %v", r)
	}

	checkStatus(t, runCLI(t, vars, "migrate", "status"), "applied")
}

func TestMigrateOnMigratedDatabase(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DATABASE_URL": pgtest.URL(t)}
	checkStatus(t, runCLI(t, vars, "migrate", "status"), "applied")
	if r := runCLI(t, vars, "migrate", "up"); r.code != 0 || r.stdout != "database is up to date\n" {
		t.Fatalf("migrate up: want exit 0 and \"database is up to date\", got %v", r)
	}
}

// TestMigrateDatabaseFromConfig: the URL may come from the file named by
// --config or TASKER_CONFIG_PATH, and TASKER_DATABASE_URL beats both the
// file and DATABASE_URL.
func TestMigrateDatabaseFromConfig(t *testing.T) {
	t.Parallel()
	url := pgtest.EmptyURL(t)
	file := writeConfig(t, fmt.Sprintf("[database]\nurl = %q\n", url))
	broken := "postgres://nobody@127.0.0.1:1/nothing"
	brokenFile := writeConfig(t, fmt.Sprintf("[database]\nurl = %q\n", broken))

	checkStatus(t, runCLI(t, nil, "migrate", "--config", file, "status"), "pending")
	checkStatus(t, runCLI(t, map[string]string{"TASKER_CONFIG_PATH": file}, "migrate", "status"), "pending")
	checkStatus(t, runCLI(t, map[string]string{"DATABASE_URL": broken, "TASKER_DATABASE_URL": url}, "migrate", "status"), "pending")
	// The environment beats the file.
	r := runCLI(t, map[string]string{"DATABASE_URL": url}, "migrate", "--config", brokenFile, "up")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "applied 0001_") {
		t.Fatalf("migrate up with DATABASE_URL over the file's url: %v", r)
	}
}

func TestMigrateWithoutDatabase(t *testing.T) {
	t.Parallel()
	for _, sub := range []string{"up", "status"} {
		for _, vars := range []map[string]string{nil, {"DATABASE_URL": ""}} {
			r := runCLI(t, vars, "migrate", sub)
			if r.code != 1 || r.stdout != "" {
				t.Errorf("migrate %s with %v: want exit 1 and nothing on stdout, got %v", sub, vars, r)
			}
			for _, w := range []string{"tasker-runner migrate: ", "database.url", "DATABASE_URL", "TASKER_DATABASE_URL"} {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("migrate %s with %v: stderr lacks %q:\n%s", sub, vars, w, r.stderr)
				}
			}
		}
	}
}

// TestMigrateUnreachableDatabase: a server that is not there fails at once,
// naming where it tried, without showing the password.
func TestMigrateUnreachableDatabase(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	url := fmt.Sprintf("postgres://tasker:sekrit@127.0.0.1:%d/tasker?connect_timeout=5", port)
	r := runCLI(t, map[string]string{"DATABASE_URL": url}, "migrate", "up")
	if r.code != 1 || r.stdout != "" {
		t.Fatalf("want exit 1 and nothing on stdout, got %v", r)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Errorf("the error does not say where it tried:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "sekrit") {
		t.Errorf("the error shows the password:\n%s", r.stderr)
	}
}
