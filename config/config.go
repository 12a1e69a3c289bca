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
	"maps"
	"math"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-streams/sluice/config/properties"
)

// Config is an immutable set of configuration keys. The zero value is empty and usable.
// A Config loaded from a file also knows the file and the lines each key is given on.
type Config struct {
	m     map[string]string
	file  string
	lines map[string][]int
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
	entries, err := properties.Parse(f)
	if err != nil {
		return Config{}, fmt.Errorf("config file %s: %w", path, err)
	}
	return fromEntries(path, entries), nil
}

// fromEntries builds the Config of a parsed file. A key given more than once keeps
// its last value, as in Java's Properties, and every line it was given on.
func fromEntries(file string, entries []properties.Entry) Config {
	c := Config{m: make(map[string]string, len(entries)), file: file, lines: make(map[string][]int, len(entries))}
	for _, e := range entries {
		c.m[e.Key] = e.Value
		c.lines[e.Key] = append(c.lines[e.Key], e.Line)
	}
	return c
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

// File returns the path the configuration was loaded from, or "" when it was not
// loaded from a file.
func (c Config) File() string { return c.file }

// Lines returns the 1-based lines of the file on which key is given, in file order;
// the value of the last one is the key's value. It returns nil when the key is not
// set or the configuration was not loaded from a file.
func (c Config) Lines(key string) []int { return slices.Clone(c.lines[key]) }

// Where returns where key's value comes from: "file:line", or "" when unknown.
func (c Config) Where(key string) string {
	lines := c.lines[key]
	if c.file == "" || len(lines) == 0 {
		return ""
	}
	return fmt.Sprintf("%s:%d", c.file, lines[len(lines)-1])
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

// With returns a copy of c with key set to value. The other keys keep their lines;
// key has none.
func (c Config) With(key, value string) Config {
	n := New(c.m)
	n.m[key] = value
	n.file = c.file
	if c.lines != nil {
		n.lines = maps.Clone(c.lines)
		delete(n.lines, key)
	}
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

// MaxMillis is the largest number of milliseconds a time.Duration holds (about 292
// years).
const MaxMillis = math.MaxInt64 / int64(time.Millisecond)

// Millis returns key, a number of milliseconds, as a duration, or def when unset. The
// value must be -1 (Samza's "off"), 0, or a positive number up to MaxMillis: a larger
// one would overflow the duration, and other negative numbers mean nothing. Callers
// check the range their key allows.
func (c Config) Millis(key string, def time.Duration) (time.Duration, error) {
	n, err := c.Int(key, int64(def/time.Millisecond))
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Msg = "not a whole number of milliseconds"
			if isInteger(e.Value) {
				e.Msg = fmt.Sprintf("too large: at most %d milliseconds (about 292 years)", MaxMillis)
			}
		}
		return def, err
	}
	v, _ := c.Get(key)
	switch {
	case n > MaxMillis:
		return def, &Error{Key: key, Value: v, Msg: fmt.Sprintf("too large: at most %d milliseconds (about 292 years)", MaxMillis)}
	case n < -1:
		return def, &Error{Key: key, Value: v, Msg: "must be -1, 0 or a positive number of milliseconds"}
	}
	return time.Duration(n) * time.Millisecond, nil
}

// isInteger reports whether s is an optional sign and decimal digits, however many.
func isInteger(s string) bool {
	s = strings.TrimLeft(s, "+-")
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// Error is one configuration problem: the key, its value, and what is wrong.
type Error struct {
	Key   string
	Value string
	Msg   string
	// Err, when set, is the underlying cause; Msg defaults to its text.
	Err error
	// Where, when set, is where the key is given ("file:line", see Config.Where);
	// the message starts with it.
	Where string
}

func (e *Error) Error() string {
	msg := e.Msg
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	where := ""
	if e.Where != "" {
		where = e.Where + ": "
	}
	if e.Value == "" {
		return fmt.Sprintf("%s%s: %s", where, e.Key, msg)
	}
	return fmt.Sprintf("%s%s=%s: %s", where, e.Key, e.Value, msg)
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
	p.AddErr(&Error{Key: key, Value: value, Msg: fmt.Sprintf(format, args...)})
}

// AddErr records err (typically from a typed getter); nil is ignored. The errors of a
// joined error are recorded one by one, and a problem already recorded (the same key,
// value and message, as when two readers of a key check it alike) is not repeated.
func (p *Problems) AddErr(err error) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			p.AddErr(e)
		}
		return
	}
	if e, ok := err.(*Error); ok {
		for _, have := range p.errs {
			if h, ok := have.(*Error); ok && *h == *e {
				return
			}
		}
	}
	p.errs = append(p.errs, err)
}

// Err returns all problems joined, or nil when there are none.
func (p *Problems) Err() error { return errors.Join(p.errs...) }
