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

func TestLoadKeepsTheLinesOfEveryKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "job.properties")
	if err := os.WriteFile(path, []byte("# a comment\ntask.commit.ms=100\njob.name=a \\\n  b\n\ntask.commit.ms=200\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Get("task.commit.ms"); v != "200" {
		t.Errorf("task.commit.ms = %q, want the last value 200", v)
	}
	if got := c.Lines("task.commit.ms"); len(got) != 2 || got[0] != 2 || got[1] != 6 {
		t.Errorf("Lines(task.commit.ms) = %v, want [2 6]", got)
	}
	if got := c.Where("job.name"); got != path+":3" {
		t.Errorf("Where(job.name) = %q, want %s:3", got, path)
	}
	if c.File() != path || c.Where("unset") != "" || c.Lines("unset") != nil {
		t.Errorf("File = %q, Where(unset) = %q, Lines(unset) = %v", c.File(), c.Where("unset"), c.Lines("unset"))
	}
	w := c.With("task.commit.ms", "5")
	if w.Where("task.commit.ms") != "" || w.Where("job.name") != path+":3" {
		t.Errorf("With: Where(task.commit.ms) = %q, Where(job.name) = %q", w.Where("task.commit.ms"), w.Where("job.name"))
	}
	if m := config.New(map[string]string{"a": "1"}); m.Where("a") != "" || m.File() != "" {
		t.Errorf("New: Where = %q, File = %q", m.Where("a"), m.File())
	}
}

func TestErrorStartsWithWhere(t *testing.T) {
	e := &config.Error{Key: "task.comit.ms", Value: "100", Msg: "unknown key", Where: "job.properties:3"}
	if got, want := e.Error(), "job.properties:3: task.comit.ms=100: unknown key"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestMillisRejectsDurationsThatOverflow(t *testing.T) {
	c := config.New(map[string]string{
		"overflow": "18446744073710", "huge": "99999999999999999999", "max": "9223372036854",
		"off": "-1", "zero": "0", "neg": "-5", "minneg": "-9223372036855",
	})
	for key, want := range map[string]string{
		"overflow": "overflow=18446744073710: too large",
		"huge":     "huge=99999999999999999999: too large",
		"neg":      "neg=-5: must be -1, 0 or a positive number",
		"minneg":   "minneg=-9223372036855: must be -1, 0 or a positive number",
	} {
		d, err := c.Millis(key, time.Second)
		if err == nil || !strings.Contains(err.Error(), want) || !config.IsConfigError(err) {
			t.Errorf("Millis(%s) = %v, %v; want an error containing %q", key, d, err, want)
		}
	}
	for key, want := range map[string]time.Duration{"max": time.Duration(config.MaxMillis) * time.Millisecond, "off": -time.Millisecond, "zero": 0} {
		if d, err := c.Millis(key, time.Second); err != nil || d != want {
			t.Errorf("Millis(%s) = %v, %v; want %v", key, d, err, want)
		}
	}
	if d := time.Duration(config.MaxMillis) * time.Millisecond; d <= 0 {
		t.Errorf("MaxMillis overflows: %v", d)
	}
}
