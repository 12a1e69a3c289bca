package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestProfilesFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "allocs.pprof")
	t.Setenv(envCPUProfile, cpu)
	t.Setenv(envMemProfile, mem)
	var stderr bytes.Buffer
	startProfiles(&stderr)()
	if stderr.Len() > 0 {
		t.Errorf("stderr: %s", stderr.String())
	}
	for _, p := range []string{cpu, mem} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s not written: %v", p, err)
		}
	}
}

func TestProfileProblemsAreReportedNotFatal(t *testing.T) {
	t.Setenv(envCPUProfile, filepath.Join(t.TempDir(), "no", "such", "dir", "cpu.pprof"))
	t.Setenv(envMemProfile, "")
	var stderr bytes.Buffer
	startProfiles(&stderr)()
	if !bytes.Contains(stderr.Bytes(), []byte(envCPUProfile)) {
		t.Errorf("stderr does not name %s: %q", envCPUProfile, stderr.String())
	}
}

func TestNoProfilesByDefault(t *testing.T) {
	t.Setenv(envCPUProfile, "")
	t.Setenv(envMemProfile, "")
	var stderr bytes.Buffer
	startProfiles(&stderr)()
	if stderr.Len() > 0 {
		t.Errorf("stderr: %s", stderr.String())
	}
}
