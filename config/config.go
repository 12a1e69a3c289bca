// Package config holds a job's configuration: a flat, immutable map of Samza-style keys
// (job.name, task.inputs, systems.kafka.samza.factory, ...) loaded from a Java
// .properties file, with typed getters whose errors name the key and the value.
//
// Validation collects problems rather than stopping at the first: callers add every
// problem to a Problems value and report them all at once.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-streams/sluice/config/properties"
)

// Config is an immutable set of configuration keys. The zero value is empty and usable.
type Config struct {
	m map[string]string
}

// New returns a Config holding a copy of m.
func New(m map[string]string) Config {
	c := Config{m: make(map[string]string, len(m))}
	for k, v := range m {
		c.m[k] = v
	}
	return c
}

// Load reads a .properties file named by a plain path or a file:// URL.
func Load(pathOrURL string) (Config, error) {
	path, err := LocalPath(pathOrURL)
	if err != nil {
		return Config{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	m, err := properties.ParseMap(f)
	if err != nil {
		return Config{}, fmt.Errorf("config file %s: %w", path, err)
	}
	return Config{m: m}, nil
}

// LocalPath turns a plain path or a file:// URL into a path. Other URL schemes are an error.
func LocalPath(pathOrURL string) (string, error) {
	if !strings.Contains(pathOrURL, "://") {
		return pathOrURL, nil
	}
	u, err := url.Parse(pathOrURL)
	if err != nil {
		return "", fmt.Errorf("%q is not a path or file:// URL: %w", pathOrURL, err)
	}
	if u.Scheme != "file" {
		return "", fmt.Errorf("%q: only plain paths and file:// URLs are supported, not %s://", pathOrURL, u.Scheme)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("%q: a file:// URL must name a local file (host %q)", pathOrURL, u.Host)
	}
	if u.Path == "" {
		return "", fmt.Errorf("%q: the URL has no path", pathOrURL)
	}
	return u.Path, nil
}

// Get returns the value of key, trimmed of surrounding whitespace, and whether it is set.
func (c Config) Get(key string) (string, bool) {
	v, ok := c.m[key]
	return strings.TrimSpace(v), ok
}

// GetOr returns the value of key, or def when the key is unset or blank.
func (c Config) GetOr(key, def string) string {
	if v, ok := c.Get(key); ok && v != "" {
		return v
	}
	return def
}

// Has reports whether key is set to a non-blank value.
func (c Config) Has(key string) bool {
	v, ok := c.Get(key)
	return ok && v != ""
}

// Keys returns every key, sorted.
func (c Config) Keys() []string {
	keys := make([]string, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Map returns a copy of the whole configuration.
func (c Config) Map() map[string]string {
	m := make(map[string]string, len(c.m))
	for k, v := range c.m {
		m[k] = v
	}
	return m
}

// Subset returns the keys that start with prefix, with the prefix removed.
func (c Config) Subset(prefix string) Config {
	s := Config{m: map[string]string{}}
	for k, v := range c.m {
		if rest, ok := strings.CutPrefix(k, prefix); ok && rest != "" {
			s.m[rest] = v
		}
	}
	return s
}

// With returns a copy of c with key set to value.
func (c Config) With(key, value string) Config {
	n := New(c.m)
	n.m[key] = value
	return n
}

// Int returns key as an integer, or def when unset or blank.
func (c Config) Int(key string, def int64) (int64, error) {
	v, ok := c.Get(key)
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return def, &Error{Key: key, Value: v, Msg: "not a whole number"}
	}
	return n, nil
}

// Bool returns key as a boolean (true or false, any case), or def when unset or blank.
func (c Config) Bool(key string, def bool) (bool, error) {
	v, ok := c.Get(key)
	if !ok || v == "" {
		return def, nil
	}
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return def, &Error{Key: key, Value: v, Msg: "must be true or false"}
}

// Millis returns key, a number of milliseconds, as a duration, or def when unset.
func (c Config) Millis(key string, def time.Duration) (time.Duration, error) {
	n, err := c.Int(key, int64(def/time.Millisecond))
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Msg = "not a whole number of milliseconds"
		}
		return def, err
	}
	return time.Duration(n) * time.Millisecond, nil
}

// Error is one configuration problem: the key, its value, and what is wrong.
type Error struct {
	Key   string
	Value string
	Msg   string
	// Err, when set, is the underlying cause; Msg defaults to its text.
	Err error
}

func (e *Error) Error() string {
	msg := e.Msg
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Key, msg)
	}
	return fmt.Sprintf("%s=%s: %s", e.Key, e.Value, msg)
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// IsConfigError reports whether err holds a configuration problem.
func IsConfigError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Problems collects configuration problems so they can be reported together.
type Problems struct {
	errs []error
}

// Add records a problem with key and value.
func (p *Problems) Add(key, value, format string, args ...any) {
	p.errs = append(p.errs, &Error{Key: key, Value: value, Msg: fmt.Sprintf(format, args...)})
}

// AddErr records err (typically from a typed getter); nil is ignored.
func (p *Problems) AddErr(err error) {
	if err != nil {
		p.errs = append(p.errs, err)
	}
}

// Err returns all problems joined, or nil when there are none.
func (p *Problems) Err() error { return errors.Join(p.errs...) }
