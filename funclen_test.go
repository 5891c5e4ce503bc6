package taskerrunner_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// maxFuncLines is the longest a function may be. Long functions were the
// hardest code to change here; past this length a function is a sequence
// of steps that deserve names.
const maxFuncLines = 100

// longFuncExceptions are functions allowed past maxFuncLines, by
// "path:name", each with its reason. Keep it empty if you can.
var longFuncExceptions = map[string]string{}

// TestFunctionLength fails for a function over maxFuncLines lines, except
// generated code and tables of test cases: in a test file, the lines of the
// function's largest composite literal (its table) do not count.
func TestFunctionLength(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		if ast.IsGenerated(f) {
			return nil
		}
		for _, long := range longFuncs(fset, f, strings.HasSuffix(path, "_test.go")) {
			key := path + ":" + long.name
			if _, ok := longFuncExceptions[key]; ok {
				continue
			}
			t.Errorf("%s: %s is %d lines (at most %d; split it into named steps, or list it in longFuncExceptions with a reason)", fset.Position(long.pos), long.name, long.lines, maxFuncLines)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

type longFunc struct {
	name  string
	pos   token.Pos
	lines int
}

// longFuncs returns f's functions (declarations and literals assigned at
// top level alike, through their declarations) over maxFuncLines. In a test
// file a function's largest composite literal does not count.
func longFuncs(fset *token.FileSet, f *ast.File, test bool) []longFunc {
	var out []longFunc
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		n := lineSpan(fset, fd.Pos(), fd.End())
		if test {
			n -= largestLiteral(fset, fd.Body)
		}
		if n > maxFuncLines {
			name := fd.Name.Name
			if fd.Recv != nil && len(fd.Recv.List) == 1 {
				name = fmt.Sprintf("%s.%s", recvName(fd.Recv.List[0].Type), name)
			}
			out = append(out, longFunc{name: name, pos: fd.Pos(), lines: n})
		}
	}
	return out
}

func lineSpan(fset *token.FileSet, from, to token.Pos) int {
	return fset.Position(to).Line - fset.Position(from).Line + 1
}

// largestLiteral is the line span of the largest composite literal in body
// (a table of test cases), not counting its first and last lines.
func largestLiteral(fset *token.FileSet, body *ast.BlockStmt) int {
	largest := 0
	ast.Inspect(body, func(n ast.Node) bool {
		if cl, ok := n.(*ast.CompositeLit); ok {
			largest = max(largest, lineSpan(fset, cl.Pos(), cl.End())-2)
			return false
		}
		return true
	})
	return largest
}

func recvName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return recvName(e.X)
	case *ast.IndexExpr:
		return recvName(e.X)
	case *ast.IndexListExpr:
		return recvName(e.X)
	case *ast.Ident:
		return e.Name
	}
	return "?"
}
