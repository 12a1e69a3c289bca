package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/config"
)

func TestLoadPathAndFileURL(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "job.properties")
	if err := os.WriteFile(path, []byte("job.name = my job\ntask.commit.ms: 1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{path, "file://" + path, "file://localhost" + path} {
		c, err := config.Load(arg)
		if err != nil {
			t.Fatalf("Load(%q): %v", arg, err)
		}
		if v, _ := c.Get("job.name"); v != "my job" {
			t.Errorf("Load(%q): job.name = %q", arg, v)
		}
	}
	for _, arg := range []string{"http://example.com/x.properties", "file://otherhost/x", filepath.Join(dir, "missing")} {
		if _, err := config.Load(arg); err == nil {
			t.Errorf("Load(%q) succeeded", arg)
		}
	}
}

func TestLoadSyntaxErrorNamesFileAndLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.properties")
	os.WriteFile(path, []byte("a=1\nb=\\u12G4\n"), 0o644)
	_, err := config.Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("error = %v, want file and line 2", err)
	}
}

func TestTypedGettersNameKeyAndValue(t *testing.T) {
	c := config.New(map[string]string{"n": " 42 ", "bad": "4x", "b": "TRUE", "nb": "yes", "ms": "250"})
	if n, err := c.Int("n", 0); err != nil || n != 42 {
		t.Errorf("Int = %d, %v", n, err)
	}
	if n, err := c.Int("unset", 7); err != nil || n != 7 {
		t.Errorf("Int default = %d, %v", n, err)
	}
	_, err := c.Int("bad", 0)
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Key != "bad" || ce.Value != "4x" || !config.IsConfigError(err) {
		t.Errorf("Int error = %#v", err)
	}
	if b, err := c.Bool("b", false); err != nil || !b {
		t.Errorf("Bool = %v, %v", b, err)
	}
	if _, err := c.Bool("nb", false); err == nil || !strings.Contains(err.Error(), "nb=yes") {
		t.Errorf("Bool error = %v", err)
	}
	if d, err := c.Millis("ms", 0); err != nil || d != 250*time.Millisecond {
		t.Errorf("Millis = %v, %v", d, err)
	}
	if _, err := c.Millis("bad", 0); err == nil || !strings.Contains(err.Error(), "milliseconds") {
		t.Errorf("Millis error = %v", err)
	}
}

func TestSubsetAndProblems(t *testing.T) {
	c := config.New(map[string]string{"systems.k.a": "1", "systems.k.b": "2", "other": "3"})
	s := c.Subset("systems.k.")
	if got := strings.Join(s.Keys(), ","); got != "a,b" {
		t.Errorf("Subset keys = %s", got)
	}
	var p config.Problems
	if p.Err() != nil {
		t.Error("empty problems is an error")
	}
	p.Add("x", "1", "bad %s", "thing")
	p.AddErr(nil)
	p.Add("y", "", "missing")
	if err := p.Err(); err == nil || err.Error() != "x=1: bad thing\ny: missing" {
		t.Errorf("Problems = %q", err)
	}
}
