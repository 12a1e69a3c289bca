//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package flock

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

var errUnsupported = fmt.Errorf("flock is not available on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// TryExclusive is not supported on this platform.
func TryExclusive(*os.File) error { return errUnsupported }

// TryShared is not supported on this platform.
func TryShared(*os.File) error { return errUnsupported }

// Unlock is not supported on this platform.
func Unlock(*os.File) error { return errUnsupported }
