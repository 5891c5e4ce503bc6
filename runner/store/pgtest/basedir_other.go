//go:build !linux

package pgtest

// fastBaseDir returns "": only Linux is known to have a suitable tmpfs.
func fastBaseDir() string { return "" }
