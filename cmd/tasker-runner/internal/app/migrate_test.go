package app

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

func TestMigrateUpOnEmptyDatabase(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DATABASE_URL": pgtest.EmptyURL(t)}

	clitest.CheckMigrateStatus(t, clitest.Run(t, vars, "migrate", "status"), "pending")

	r := clitest.Run(t, vars, "migrate", "up")
	var want strings.Builder
	for _, m := range clitest.EmbeddedMigrations(t) {
		fmt.Fprintf(&want, "applied %04d_%s\n", m.Version, m.Name)
	}
	if r.Code != 0 || r.Stdout != want.String() {
		t.Fatalf("first migrate up: want exit 0 and\n%s\ngot %v", want.String(), r)
	}

	r = clitest.Run(t, vars, "migrate", "up")
	if r.Code != 0 || r.Stdout != "database is up to date\n" {
		t.Fatalf("second migrate up: want exit 0 and \"database is up to date\", got %v", r)
	}

	clitest.CheckMigrateStatus(t, clitest.Run(t, vars, "migrate", "status"), "applied")
}

func TestMigrateOnMigratedDatabase(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DATABASE_URL": pgtest.URL(t)}
	clitest.CheckMigrateStatus(t, clitest.Run(t, vars, "migrate", "status"), "applied")
	if r := clitest.Run(t, vars, "migrate", "up"); r.Code != 0 || r.Stdout != "database is up to date\n" {
		t.Fatalf("migrate up: want exit 0 and \"database is up to date\", got %v", r)
	}
}

// TestMigrateDatabaseFromConfig: the URL may come from the file named by
// --config or TASKER_CONFIG_PATH, and TASKER_DATABASE_URL beats both the
// file and DATABASE_URL.
func TestMigrateDatabaseFromConfig(t *testing.T) {
	t.Parallel()
	url := pgtest.EmptyURL(t)
	file := clitest.WriteConfig(t, fmt.Sprintf("[database]\nurl = %q\n", url))
	broken := "postgres://nobody@127.0.0.1:1/nothing"
	brokenFile := clitest.WriteConfig(t, fmt.Sprintf("[database]\nurl = %q\n", broken))

	clitest.CheckMigrateStatus(t, clitest.Run(t, nil, "migrate", "--config", file, "status"), "pending")
	clitest.CheckMigrateStatus(t, clitest.Run(t, map[string]string{"TASKER_CONFIG_PATH": file}, "migrate", "status"), "pending")
	clitest.CheckMigrateStatus(t, clitest.Run(t, map[string]string{"DATABASE_URL": broken, "TASKER_DATABASE_URL": url}, "migrate", "status"), "pending")
	// The environment beats the file.
	r := clitest.Run(t, map[string]string{"DATABASE_URL": url}, "migrate", "--config", brokenFile, "up")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "applied 0001_") {
		t.Fatalf("migrate up with DATABASE_URL over the file's url: %v", r)
	}
}

func TestMigrateWithoutDatabase(t *testing.T) {
	t.Parallel()
	for _, sub := range []string{"up", "status"} {
		for _, vars := range []map[string]string{nil, {"DATABASE_URL": ""}} {
			r := clitest.Run(t, vars, "migrate", sub)
			if r.Code != 1 || r.Stdout != "" {
				t.Errorf("migrate %s with %v: want exit 1 and nothing on stdout, got %v", sub, vars, r)
			}
			for _, w := range []string{"tasker-runner migrate: ", "database.url", "DATABASE_URL", "TASKER_DATABASE_URL"} {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("migrate %s with %v: stderr lacks %q:\n%s", sub, vars, w, r.Stderr)
				}
			}
		}
	}
}

// TestMigrateUnreachableDatabase: a server that is not there fails at once,
// naming where it tried, without showing the password.
func TestMigrateUnreachableDatabase(t *testing.T) {
	t.Parallel()
	port := clitest.FreePort(t)
	url := fmt.Sprintf("postgres://tasker:sekrit@127.0.0.1:%d/tasker?connect_timeout=5", port)
	r := clitest.Run(t, map[string]string{"DATABASE_URL": url}, "migrate", "up")
	if r.Code != 1 || r.Stdout != "" {
		t.Fatalf("want exit 1 and nothing on stdout, got %v", r)
	}
	if !strings.Contains(r.Stderr, fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Errorf("the error does not say where it tried:\n%s", r.Stderr)
	}
	if strings.Contains(r.Stderr, "sekrit") {
		t.Errorf("the error shows the password:\n%s", r.Stderr)
	}
}
