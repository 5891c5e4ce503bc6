package runner_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// exampleDatabase returns the URL of a fresh, migrated database on the test
// harness's server (TEST_DATABASE_URL or a throwaway cluster, see pgtest)
// and a function that drops it: an example gets no *testing.T to do it.
func exampleDatabase() (url string, drop func()) {
	tb := &exampleTB{}
	return pgtest.URL(tb), tb.cleanup
}

// exampleTB is the little of a [testing.TB] that [pgtest.URL] uses. The
// embedded interface is nil: any other method panics.
type exampleTB struct {
	testing.TB
	cleanups []func()
}

func (*exampleTB) Helper()                      {}
func (*exampleTB) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (*exampleTB) Errorf(f string, args ...any) { fmt.Fprintf(os.Stderr, f+"\n", args...) }
func (t *exampleTB) Cleanup(f func())           { t.cleanups = append(t.cleanups, f) }

func (t *exampleTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
