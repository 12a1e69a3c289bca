package system_test

import (
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
)

func TestParseResetPolicy(t *testing.T) {
	for in, want := range map[string]system.ResetPolicy{
		"oldest": system.ResetOldest, "Earliest": system.ResetOldest, "smallest": system.ResetOldest,
		"upcoming": system.ResetUpcoming, "LATEST": system.ResetUpcoming, "largest": system.ResetUpcoming,
		"fail": system.ResetFail, "none": system.ResetFail,
	} {
		if got, ok := system.ParseResetPolicy(in); !ok || got != want {
			t.Errorf("ParseResetPolicy(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"newest", "sometimes", ""} {
		if _, ok := system.ParseResetPolicy(bad); ok {
			t.Errorf("ParseResetPolicy(%q) accepted it", bad)
		}
	}
}

func TestReadResetPolicies(t *testing.T) {
	var p config.Problems
	r := system.ReadResetPolicies(&p, config.New(map[string]string{
		"systems.k.consumer.auto.offset.reset":                 "latest",
		"systems.k.streams.a.b.consumer.auto.offset.reset":     "none",
		"systems.k.streams.bad.consumer.auto.offset.reset":     "often",
		"systems.other.streams.a.b.consumer.auto.offset.reset": "earliest",
	}), "k")
	if r.Of("a.b") != system.ResetFail || r.Of("c") != system.ResetUpcoming || r.Of("bad") != system.ResetUpcoming {
		t.Errorf("policies: a.b %v, c %v, bad %v", r.Of("a.b"), r.Of("c"), r.Of("bad"))
	}
	err := p.Err()
	if err == nil || !strings.Contains(err.Error(), "systems.k.streams.bad.consumer.auto.offset.reset=often: must be oldest, upcoming or fail") {
		t.Errorf("error = %v", err)
	}
	var none config.Problems
	if got := system.ReadResetPolicies(&none, config.New(nil), "k").Of("x"); got != system.ResetOldest || none.Err() != nil {
		t.Errorf("default %v, %v", got, none.Err())
	}
	// Read twice into one list, as the job and the system both do: reported once.
	system.ReadResetPolicies(&p, config.New(map[string]string{"systems.k.streams.bad.consumer.auto.offset.reset": "often"}), "k")
	if n := strings.Count(p.Err().Error(), "often"); n != 1 {
		t.Errorf("the bad value is reported %d times:\n%v", n, p.Err())
	}
}
