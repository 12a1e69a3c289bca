package job

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sluice-streams/sluice/config"
)

// FuzzCheckKeys checks that any key is classified without a panic, that a suggestion
// is a known key close to the one given, and that the distance is a metric's
// distance (zero only for equal keys, symmetric, within the length bounds).
func FuzzCheckKeys(f *testing.F) {
	for _, s := range []string{
		"task.comit.ms", "systems.kafka.samza.ofset.default", "systems.kafka.streams.a.b.samza.rest.offset",
		"systems..samza.factory", "systems.kafka.streams..samza.offset.default", "job.", ".", "", "task.*",
		"metrics.reporter.<name>.class", "stores.x", "systems.kafka.streams.samza.samza.offset.default", "héllo.wörld",
	} {
		f.Add(s, "task.myapp.x")
	}
	f.Fuzz(func(t *testing.T, key, own string) {
		if !utf8.ValidString(key) || !utf8.ValidString(own) {
			return
		}
		r := CheckKeys(config.New(map[string]string{key: "v"}), []string{own}, nil)
		if len(r.Warnings)+len(r.Ignored) > 1 {
			t.Fatalf("%q: more than one finding: %v %v", key, r.Warnings, r.Ignored)
		}
		for _, w := range r.Warnings {
			if w.Key != key {
				t.Fatalf("%q: warning names %q", key, w.Key)
			}
			_, sugg, ok := strings.Cut(w.Msg, "did you mean ")
			if !ok {
				continue
			}
			sugg = strings.TrimSuffix(sugg, "?")
			if d := distance(key, sugg); d == 0 || d > maxTypo(key) {
				t.Fatalf("%q: suggestion %q is %d edits away", key, sugg, d)
			}
			known := match(own, sugg)
			if k, ok := lookup(sugg); ok && k.Status != Unsupported {
				known = true
			}
			if !known {
				t.Fatalf("%q: suggestion %q is not a known key", key, sugg)
			}
		}
		d := distance(key, own)
		if d != distance(own, key) || (d == 0) != (key == own) || d > max(utf8.RuneCountInString(key), utf8.RuneCountInString(own)) {
			t.Fatalf("distance(%q, %q) = %d is no distance", key, own, d)
		}
	})
}
