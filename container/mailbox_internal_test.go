package container

import (
	"testing"

	"github.com/sluice-streams/sluice/system"
)

func TestMailboxTakesHigherPriorityFirst(t *testing.T) {
	m := newMailbox(10)
	prio := map[string]int{"high": 2, "mid": 1}
	m.prio = func(ssp system.SystemStreamPartition) int { return prio[ssp.Stream] }
	put := func(stream, off string) {
		m.put(batch{envs: []system.IncomingEnvelope{{SSP: system.NewSSP("s", stream, 0), Offset: off}}})
	}
	put("low", "1")
	put("mid", "2")
	put("high", "3")
	put("low", "4")
	put("high", "5")
	var got []string
	for {
		b, ok := m.take()
		if !ok {
			break
		}
		got = append(got, b.envs[0].SSP.Stream+b.envs[0].Offset)
	}
	want := []string{"high3", "high5", "mid2", "low1", "low4"}
	if len(got) != len(want) {
		t.Fatalf("took %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("took %v, want %v (higher priority first, arrival order among equals)", got, want)
		}
	}
}
