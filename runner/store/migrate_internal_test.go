package store

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadMigrationsRejectsBadSets(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		files   fstest.MapFS
		wantErr string
	}{
		"bad name": {fstest.MapFS{"m/1_x.sql": {}}, `"1_x.sql": name must look like`},
		"gap":      {fstest.MapFS{"m/0001_a.sql": {}, "m/0003_c.sql": {}}, "without gaps"},
		"dup":      {fstest.MapFS{"m/0001_a.sql": {}, "m/0001_b.sql": {}}, "without gaps or duplicates"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadMigrations(tc.files, "m")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
	ms, err := Migrations()
	if err != nil || len(ms) == 0 || ms[0].Version != 1 || ms[0].Name != "initial" || len(ms[0].Checksum) != 64 {
		t.Fatalf("embedded migrations: %v, %+v", err, ms)
	}
}
