package main

import (
	"runtime"
	"runtime/debug"
)

func moduleVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			return d.Version
		}
	}
	return ""
}

func numCPU() int { return runtime.NumCPU() }
