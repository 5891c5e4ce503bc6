package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// programs are the PostgreSQL binaries a cluster needs, all from one
// installation: initdb and pg_ctl refuse a postgres of another version.
var programs = []string{"initdb", "pg_ctl", "postgres"}

// binDirGlobs are where distributions install versioned PostgreSQL binaries:
// Debian/Ubuntu, then the PGDG RPMs.
var binDirGlobs = []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"}

// ErrNoBinaries is returned (wrapped, with what to install) by [Start] when
// no PostgreSQL installation is found.
var ErrNoBinaries = errors.New("PostgreSQL server binaries not found")

const installHint = "install them (apt-get install postgresql on Debian/Ubuntu, dnf install postgresql-server on Fedora/RHEL, " +
	"brew install postgresql on macOS), put their directory (such as /usr/lib/postgresql/16/bin) on PATH, or set the bin dir explicitly"

// findBinDir returns the directory to take the PostgreSQL programs from.
func findBinDir(explicit string) (string, error) {
	if explicit != "" {
		if missing := missingPrograms(explicit); len(missing) > 0 {
			return "", fmt.Errorf("pgcluster: %w: bin dir %s lacks %s; %s", ErrNoBinaries, explicit, strings.Join(missing, ", "), installHint)
		}
		return explicit, nil
	}
	// On PATH, each program may be a symlink into the real installation (as
	// /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb): resolve
	// them and use a directory that holds all three.
	var candidates []string
	for _, p := range programs {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		if real, err := filepath.EvalSymlinks(path); err == nil {
			path = real
		}
		if d := filepath.Dir(path); !slices.Contains(candidates, d) {
			candidates = append(candidates, d)
		}
	}
	for _, d := range candidates {
		if len(missingPrograms(d)) == 0 {
			return d, nil
		}
	}
	if d := highestVersionDir(binDirGlobs); d != "" {
		return d, nil
	}
	return "", fmt.Errorf("pgcluster: %w (initdb, pg_ctl and postgres from one installation, on PATH or in %s); %s",
		ErrNoBinaries, strings.Join(binDirGlobs, " or "), installHint)
}

func missingPrograms(dir string) []string {
	var missing []string
	for _, p := range programs {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, p)
		}
	}
	return missing
}

var firstNumber = regexp.MustCompile(`\d+`)

// highestVersionDir returns, among the directories matching globs that hold
// all the programs, the one with the highest version number in its path.
func highestVersionDir(globs []string) string {
	best, bestV := "", -1
	for _, g := range globs {
		matches, _ := filepath.Glob(g)
		for _, d := range matches {
			v, err := strconv.Atoi(firstNumber.FindString(strings.TrimPrefix(d, filepath.Dir(filepath.Dir(d)))))
			if err != nil || v <= bestV || len(missingPrograms(d)) > 0 {
				continue
			}
			best, bestV = d, v
		}
	}
	return best
}

// serverVersion returns the major version of the postgres in binDir.
// `postgres --version` is allowed as root.
func serverVersion(ctx context.Context, binDir string) (int, error) {
	bin := filepath.Join(binDir, "postgres")
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgcluster: %s --version: %w: %s", bin, err, tail(out))
	}
	v, err := parseVersion(string(out))
	if err != nil {
		return 0, fmt.Errorf("pgcluster: %s --version: %w", bin, err)
	}
	return v, nil
}

var versionOutput = regexp.MustCompile(`\(PostgreSQL\)\s+(\d+)`)

// parseVersion extracts the major version from `postgres --version` output,
// such as "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" or
// "postgres (PostgreSQL) 18beta1".
func parseVersion(s string) (int, error) {
	m := versionOutput.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("unexpected output %q", strings.TrimSpace(s))
	}
	return strconv.Atoi(m[1])
}
