// Package flock takes advisory locks on whole files with flock(2).
//
// A lock belongs to one open file (one *os.File): it conflicts with the locks taken
// through every other open of the same file, in this process or another, and it is
// released when that file is closed or when its process exits, however it exits. A
// crash therefore never leaves a stale lock behind, even when the lock file stays.
//
// Every function tries once and never waits: a lock held elsewhere is ErrLocked. On
// platforms without flock(2) every function returns an error wrapping
// errors.ErrUnsupported, and callers decide what running without a lock means.
package flock

import "errors"

// ErrLocked is returned when another open file holds a conflicting lock.
var ErrLocked = errors.New("locked by another open file")
