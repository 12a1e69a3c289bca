package config_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/config"
)

// FuzzMillis checks that Millis never returns a duration that overflowed: whatever
// it accepts is -1, 0 or a positive whole number of milliseconds that round-trips.
func FuzzMillis(f *testing.F) {
	for _, s := range []string{"0", "-1", "60000", "18446744073710", "9223372036854", "9223372036855", "-2", "+5", " 7 ", "1e3", "", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c := config.New(map[string]string{"k.ms": v})
		d, err := c.Millis("k.ms", time.Second)
		if err != nil {
			if !config.IsConfigError(err) || !strings.Contains(err.Error(), "k.ms") {
				t.Fatalf("Millis(%q) error %v does not name the key", v, err)
			}
			return
		}
		if strings.TrimSpace(v) == "" {
			if d != time.Second {
				t.Fatalf("Millis(%q) = %v, want the default", v, d)
			}
			return
		}
		n, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if perr != nil || n < -1 || n > config.MaxMillis || d != time.Duration(n)*time.Millisecond || d/time.Millisecond != time.Duration(n) {
			t.Fatalf("Millis(%q) = %v, accepted a value it should not", v, d)
		}
	})
}
