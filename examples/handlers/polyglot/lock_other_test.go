//go:build !linux

package polyglot

import "testing"

// lockDir does nothing here: concurrent installs are only guarded on Linux.
func lockDir(*testing.T, string) (unlock func()) { return func() {} }
