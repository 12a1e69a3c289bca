package checkpointtool

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/sluice-streams/sluice/system"
)

// Key returns the properties key of one partition of one task's checkpoint, unescaped:
// tasknames.<task>.systems.<system>.streams.<stream>.partitions.<partition>. Escape it
// with properties.EscapeKey to write it in a file.
func Key(task string, ssp system.SystemStreamPartition) string {
	return "tasknames." + task + ".systems." + ssp.System + ".streams." + ssp.Stream + ".partitions." + strconv.FormatInt(int64(ssp.Partition), 10)
}

const keyForm = "tasknames.<task>.systems.<system>.streams.<stream>.partitions.<partition>"

// keyParser splits keys by matching them against the job's own task names and input
// streams, so task names may contain dots and spaces and stream names may contain dots
// (a greedy regular expression would split "a.systems.b" wrongly).
type keyParser struct {
	tasks  []string // sorted
	inputs []system.SystemStream
	reads  map[string]map[system.SystemStreamPartition]bool
	owner  map[system.SystemStreamPartition]string
	ssps   map[string][]system.SystemStreamPartition
}

func newKeyParser(tasks []string, ssps map[string][]system.SystemStreamPartition, inputs []system.SystemStream) *keyParser {
	kp := &keyParser{tasks: tasks, inputs: inputs, ssps: ssps,
		reads: map[string]map[system.SystemStreamPartition]bool{}, owner: map[system.SystemStreamPartition]string{}}
	for t, list := range ssps {
		kp.reads[t] = map[system.SystemStreamPartition]bool{}
		for _, ssp := range list {
			kp.reads[t][ssp] = true
			kp.owner[ssp] = t
		}
	}
	return kp
}

type parsedKey struct {
	task string
	ssp  system.SystemStreamPartition
}

// loose splits a key for error messages only: the task up to the first ".systems.",
// a system without dots, the stream up to the last ".partitions.".
var loose = regexp.MustCompile(`^tasknames\.(.+?)\.systems\.([^.]+)\.streams\.(.+)\.partitions\.([^.]*)$`)

// after splits what follows "<task>.systems." for error messages.
var after = regexp.MustCompile(`^([^.]+)\.streams\.(.+)\.partitions\.([^.]*)$`)

// parse returns the task and partition a key names, or a message saying what is wrong.
func (kp *keyParser) parse(key string) (parsedKey, string) {
	rest, ok := strings.CutPrefix(key, "tasknames.")
	if !ok {
		return parsedKey{}, "not a checkpoint key: keys have the form " + keyForm
	}
	var matches []parsedKey
	var knownTaskRest []string // what follows "<task>.systems." for each known task that prefixes the key
	var knownTask []string
	for _, t := range kp.tasks {
		r, ok := strings.CutPrefix(rest, t+".systems.")
		if !ok {
			continue
		}
		knownTask = append(knownTask, t)
		knownTaskRest = append(knownTaskRest, r)
		for _, in := range kp.inputs {
			pr, ok := strings.CutPrefix(r, in.System+".streams."+in.Stream+".partitions.")
			if !ok {
				continue
			}
			if p, ok := parsePartition(pr); ok {
				matches = append(matches, parsedKey{t, system.NewSSP(in.System, in.Stream, p)})
			}
		}
	}
	switch len(matches) {
	case 1:
		m := matches[0]
		if !kp.reads[m.task][m.ssp] {
			msg := fmt.Sprintf("partition %s is not an input of task %q (it reads %s)", m.ssp, m.task, sspList(kp.ssps[m.task]))
			if o, ok := kp.owner[m.ssp]; ok {
				msg += fmt.Sprintf("; task %q reads it", o)
			} else {
				msg += "; no task reads it: the stream has no such partition"
			}
			return parsedKey{}, msg
		}
		return m, ""
	case 0:
	default:
		var alts []string
		for _, m := range matches {
			alts = append(alts, fmt.Sprintf("task %q partition %s", m.task, m.ssp))
		}
		return parsedKey{}, "ambiguous key: it could name " + strings.Join(alts, " or ")
	}

	if len(knownTask) == 0 {
		sm := loose.FindStringSubmatch(key)
		if sm == nil {
			return parsedKey{}, "does not have the form " + keyForm
		}
		return parsedKey{}, fmt.Sprintf("unknown task %q: the job's tasks are %s", sm[1], taskList(kp.tasks))
	}
	// A known task, but the rest names no input partition: say which part is wrong.
	for i, r := range knownTaskRest {
		sm := after.FindStringSubmatch(r)
		if sm == nil {
			continue
		}
		ss := system.SystemStream{System: sm[1], Stream: sm[2]}
		isInput := false
		for _, in := range kp.inputs {
			if in == ss {
				isInput = true
			}
		}
		if !isInput {
			return parsedKey{}, fmt.Sprintf("stream %s is not an input of the job (task.inputs: %s) so not an input of task %q", ss, streamList(kp.inputs), knownTask[i])
		}
		return parsedKey{}, fmt.Sprintf("partition %q is not a partition number (a non-negative whole number, like 0 or 12)", sm[3])
	}
	return parsedKey{}, "does not have the form " + keyForm
}

// parsePartition accepts a canonical non-negative decimal int32: "0", "12", not "012" or "+1".
func parsePartition(s string) (int32, bool) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, false
	}
	return int32(n), true
}

func sspList(ssps []system.SystemStreamPartition) string {
	if len(ssps) == 0 {
		return "nothing"
	}
	var s []string
	for _, ssp := range ssps {
		s = append(s, ssp.String())
	}
	return strings.Join(s, ", ")
}

func streamList(ss []system.SystemStream) string {
	var s []string
	for _, x := range ss {
		s = append(s, x.String())
	}
	return strings.Join(s, ", ")
}

// taskList names the tasks, abbreviating a long list.
func taskList(tasks []string) string {
	const most = 8
	if len(tasks) == 0 {
		return "none (the job has no input partitions)"
	}
	if len(tasks) <= most {
		return strings.Join(tasks, ", ")
	}
	return strings.Join(tasks[:most-2], ", ") + fmt.Sprintf(", ... (%d more) ..., ", len(tasks)-most+1) + tasks[len(tasks)-1]
}
