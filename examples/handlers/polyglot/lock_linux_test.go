package polyglot

import (
	"os"
	"syscall"
	"testing"
)

// lockDir takes an exclusive flock(2) on dir until unlock is called:
// `tasker-runner dev` (and its tests) install into the same node_modules,
// under the same lock.
func lockDir(t *testing.T, dir string) (unlock func()) {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		t.Fatalf("locking %s: %v", dir, err)
	}
	return func() { _ = f.Close() } // closing releases the lock
}
