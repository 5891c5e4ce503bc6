package workflow

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, doc []byte) *Template {
	t.Helper()
	tpl, err := Parse(doc)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tpl
}
