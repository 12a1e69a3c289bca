package task_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/sluice-streams/sluice/task"
)

func TestIgnored(t *testing.T) {
	_, numErr := strconv.Atoi("x")
	var syntaxErr error = json.Unmarshal([]byte("{"), new(any))
	plain := errors.New("plain")
	for _, tc := range []struct {
		name    string
		err     error
		ignored []string
		want    bool
	}{
		{"nothing listed", task.Skippable(plain), nil, false},
		{"star", plain, []string{"*"}, true},
		{"skippable", task.Skippable(plain), []string{"skippable"}, true},
		{"skippable wrapped", fmt.Errorf("decode: %w", task.Skippable(plain)), []string{"skippable"}, true},
		{"unmarked", plain, []string{"skippable"}, false},
		{"own kind", task.Kind("bad-schema", plain), []string{"x", "bad-schema"}, true},
		{"other kind", task.Kind("bad-schema", plain), []string{"skippable"}, false},
		{"type name", fmt.Errorf("field count: %w", numErr), []string{"*strconv.NumError"}, true},
		{"type name in a join", errors.Join(plain, syntaxErr), []string{"*json.SyntaxError"}, true},
		{"other type", numErr, []string{"*json.SyntaxError"}, false},
		{"nil", nil, []string{"*"}, false},
	} {
		if got := task.Ignored(tc.err, tc.ignored); got != tc.want {
			t.Errorf("%s: Ignored(%v, %q) = %v, want %v", tc.name, tc.err, tc.ignored, got, tc.want)
		}
	}
	if !errors.Is(task.Skippable(plain), plain) {
		t.Error("errors.Is does not see through a Skippable error")
	}
	if task.Skippable(nil) != nil {
		t.Error("Skippable(nil) != nil")
	}
}
