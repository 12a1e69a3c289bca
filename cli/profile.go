package cli

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
)

// Profiling hooks for performance work (docs/PERFORMANCE.md), off unless set:
//
//	SLUICE_CPUPROFILE=path  write a CPU profile of the whole command to path
//	SLUICE_MEMPROFILE=path  write an allocation profile to path when the command ends
//
// Read them with `go tool pprof`. A process killed with SIGKILL writes neither.
const (
	envCPUProfile = "SLUICE_CPUPROFILE"
	envMemProfile = "SLUICE_MEMPROFILE"
)

// startProfiles starts what the environment asks for and returns the function that
// stops it and writes the files. Problems are reported to stderr and never stop
// the command.
func startProfiles(stderr io.Writer) (stop func()) {
	var stops []func()
	if path := os.Getenv(envCPUProfile); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
			if err != nil {
				f.Close()
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "sluice: %s: %v\n", envCPUProfile, err)
		} else {
			stops = append(stops, func() {
				pprof.StopCPUProfile()
				if err := f.Close(); err != nil {
					fmt.Fprintf(stderr, "sluice: %s: %v\n", envCPUProfile, err)
				}
			})
		}
	}
	if path := os.Getenv(envMemProfile); path != "" {
		stops = append(stops, func() {
			if err := writeAllocs(path); err != nil {
				fmt.Fprintf(stderr, "sluice: %s: %v\n", envMemProfile, err)
			}
		})
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}

func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC() // up-to-date statistics
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
