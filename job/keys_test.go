package job_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
)

// load writes content to a file and loads it, so keys have lines.
func load(t *testing.T, content string) config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "job.properties")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// messages returns the text of each finding, by key.
func messages(errs []*config.Error) map[string]string {
	m := map[string]string{}
	for _, e := range errs {
		m[e.Key] = e.Error()
	}
	return m
}

func TestCheckKeysWarnsOfUnknownKeysWithTheNearestKnownOne(t *testing.T) {
	c := load(t, strings.Join([]string{
		"job.name=j",
		"task.comit.ms=100",
		"systems.kafka.samza.ofset.default=oldest",
		"systems.kafka.streams.page.views.samza.rest.offset=true",
		"systems.kafka.default.stream.samza.offset.defualt=oldest",
		"task.passthrough.outptu=kafka.out",
		"job.frobnicate=3",
		"app.nmae=x",
		"metrics.reporter=snapshot",
		"task.myapp.threshold=5",
		"systems.kafka.consumer.whatever=1",
		"myapp.anything=1",
	}, "\n"))
	r := job.CheckKeys(c, []string{"task.passthrough.output"}, nil)
	got := messages(r.Warnings)
	for key, want := range map[string]string{
		"task.comit.ms":                                      c.File() + ":2: task.comit.ms=100: unknown key, ignored; did you mean task.commit.ms?",
		"systems.kafka.samza.ofset.default":                  "did you mean systems.kafka.samza.offset.default?",
		"systems.kafka.streams.page.views.samza.rest.offset": "did you mean systems.kafka.streams.page.views.samza.reset.offset?",
		"systems.kafka.default.stream.samza.offset.defualt":  "did you mean systems.kafka.default.stream.samza.offset.default?",
		"task.passthrough.outptu":                            "did you mean task.passthrough.output?",
		"app.nmae":                                           "did you mean app.name?",
		"metrics.reporter":                                   "did you mean metrics.reporters?",
		"job.frobnicate":                                     "job.frobnicate=3: unknown key, ignored",
		"task.myapp.threshold":                               "unknown key, ignored",
	} {
		if !strings.Contains(got[key], want) {
			t.Errorf("warning for %s = %q, want it to contain %q", key, got[key], want)
		}
	}
	if strings.Contains(got["job.frobnicate"], "did you mean") {
		t.Errorf("a far-off key got a suggestion: %s", got["job.frobnicate"])
	}
	for _, key := range []string{"job.name", "systems.kafka.consumer.whatever", "myapp.anything"} {
		if w, ok := got[key]; ok {
			t.Errorf("unexpected warning for %s: %s", key, w)
		}
	}
	if len(got) != 9 {
		t.Errorf("%d warnings, want 9: %v", len(got), got)
	}
}

func TestCheckKeysLeavesATasksOwnKeysAloneWhenItDeclaresNone(t *testing.T) {
	c := config.New(map[string]string{
		"task.myapp.threshold": "5",
		"task.myapp.output":    "kafka.out",
		"task.comit.ms":        "100",
		"task.inputz":          "kafka.in",
	})
	got := messages(job.CheckKeys(c, nil, nil).Warnings)
	if len(got) != 2 || !strings.Contains(got["task.comit.ms"], "did you mean task.commit.ms?") || !strings.Contains(got["task.inputz"], "did you mean task.inputs?") {
		t.Errorf("warnings = %v, want only the two typos of Sluice's keys", got)
	}
	// A task that declares its keys, exactly or as a prefix, gets every other one flagged.
	got = messages(job.CheckKeys(c, []string{"task.myapp.threshold"}, nil).Warnings)
	if _, ok := got["task.myapp.output"]; !ok || len(got) != 3 {
		t.Errorf("warnings = %v, want task.myapp.output flagged too", got)
	}
	got = messages(job.CheckKeys(c, []string{"task.myapp.*"}, nil).Warnings)
	if len(got) != 2 {
		t.Errorf("warnings with task.myapp.* declared = %v", got)
	}
	// Other packages' keys (a program's own checkpoint manager) are known too.
	got = messages(job.CheckKeys(config.New(map[string]string{"task.checkpoint.bucket": "b"}), []string{"task.x"}, []string{"task.checkpoint.bucket"}).Warnings)
	if len(got) != 0 {
		t.Errorf("warnings = %v", got)
	}
}

func TestCheckKeysIgnoresSamzaKeysWithNoMeaningAndWarnsOfUnsupportedOnes(t *testing.T) {
	c := load(t, strings.Join([]string{
		"job.factory.class=org.apache.samza.job.local.ProcessJobFactory",
		"job.coordinator.segment.bytes=1000",
		"task.opts=-Xmx1g",
		"serializers.registry.json.class=org.apache.samza.serializers.JsonSerdeFactory",
		"systems.kafka.samza.msg.serde=json",
		"systems.kafka.streams.Page.Views.samza.key.serde=string",
		"metrics.reporters=snapshot",
		"metrics.reporter.snapshot.class=org.apache.samza.metrics.reporter.MetricsSnapshotReporterFactory",
		"yarn.container.memory.mb=1024",
		"stores.counts.factory=org.apache.samza.storage.kv.RocksDbKeyValueStorageEngineFactory",
		"job.elasticity.factor=2",
	}, "\n"))
	r := job.CheckKeys(c, nil, nil)
	ignored := messages(r.Ignored)
	for _, key := range []string{"job.factory.class", "job.coordinator.segment.bytes", "task.opts", "serializers.registry.json.class",
		"systems.kafka.samza.msg.serde", "systems.kafka.streams.Page.Views.samza.key.serde", "metrics.reporters",
		"metrics.reporter.snapshot.class", "yarn.container.memory.mb"} {
		if !strings.Contains(ignored[key], "a Samza key Sluice ignores") {
			t.Errorf("%s not reported as ignored: %q", key, ignored[key])
		}
	}
	warned := messages(r.Warnings)
	for _, key := range []string{"stores.counts.factory", "job.elasticity.factor"} {
		if !strings.Contains(warned[key], "not supported by Sluice") {
			t.Errorf("%s: warning %q, want not supported", key, warned[key])
		}
	}
	if len(warned) != 2 || len(ignored) != 9 {
		t.Errorf("warnings %v, ignored %v", warned, ignored)
	}
	if !strings.HasPrefix(ignored["task.opts"], c.File()+":3: task.opts=-Xmx1g: ") {
		t.Errorf("ignored task.opts does not say where: %q", ignored["task.opts"])
	}
}

func TestCheckKeysWarnsOfAKeyGivenTwiceNamingBothLines(t *testing.T) {
	c := load(t, "task.commit.ms=100\njob.name=j\n# again\ntask.commit.ms=200\ntask.commit.ms=300\njob.name=j\n")
	got := messages(job.CheckKeys(c, nil, nil).Warnings)
	if want := c.File() + ": task.commit.ms=300: given on lines 1, 4 and 5; the last one wins"; got["task.commit.ms"] != want {
		t.Errorf("warning = %q, want %q", got["task.commit.ms"], want)
	}
	if !strings.Contains(got["job.name"], "given on lines 2 and 6") {
		t.Errorf("warning = %q", got["job.name"])
	}
}

func TestCheckKeysHidesSecrets(t *testing.T) {
	c := config.New(map[string]string{"task.myapp.db.password": "hunter2"})
	got := messages(job.CheckKeys(c, []string{"task.myapp.user"}, nil).Warnings)
	if w := got["task.myapp.db.password"]; !strings.Contains(w, "(hidden)") || strings.Contains(w, "hunter2") {
		t.Errorf("warning = %q", w)
	}
}

// sample turns a registry pattern into a key it matches.
func sample(pattern string) string {
	r := strings.NewReplacer("<system>", "kafka", "<stream>", "page.views", "<name>", "x")
	return strings.TrimSuffix(r.Replace(pattern), "*") + strings.Repeat("y", strings.Count(pattern, "*"))
}

func TestEveryRegistryKeyIsTreatedAsItsStatusSays(t *testing.T) {
	for _, k := range job.Keys() {
		key := sample(k.Pattern)
		r := job.CheckKeys(config.New(map[string]string{key: "1"}), []string{"task.x"}, nil)
		w, i := len(r.Warnings), len(r.Ignored)
		switch {
		case k.Status == job.Read && (w != 0 || i != 0),
			k.Status == job.Ignored && (w != 0 || i != 1 || k.Note == ""),
			k.Status == job.Unsupported && (w != 1 || i != 0 || k.Note == ""):
			t.Errorf("%s (%s, status %d): warnings %v, ignored %v", k.Pattern, key, k.Status, r.Warnings, r.Ignored)
		}
	}
}

// keyLiteral is a string literal in Go source that looks like a key of a namespace
// CheckKeys checks.
var keyLiteral = regexp.MustCompile(`"((?:job|task|app|metrics|serializers)\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)"`)

// TestEveryKeyTheCodeReadsIsKnown scans the module's code for key names, so a key
// read somewhere but missing from the registry fails here rather than warning users.
// Tasks' own keys (builtin, bench, the programs in examples) are declared in their
// task.Definition instead.
func TestEveryKeyTheCodeReadsIsKnown(t *testing.T) {
	seen := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "builtin", "bench", "examples", "testdata", "job":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var code strings.Builder // the source without its comment lines
		for line := range strings.Lines(string(src)) {
			if !strings.HasPrefix(strings.TrimSpace(line), "//") {
				code.WriteString(line)
			}
		}
		for _, m := range keyLiteral.FindAllStringSubmatch(code.String(), -1) {
			key := m[1]
			if key == "job.properties" {
				continue // a file name
			}
			seen++
			r := job.CheckKeys(config.New(map[string]string{key: "1"}), []string{"task.x"}, nil)
			if len(r.Warnings) != 0 {
				t.Errorf("%s reads %s, which the registry does not know: %v", path, key, r.Warnings)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 5 {
		t.Fatalf("found only %d key names in the code; is the scan broken?", seen)
	}
}

func TestCoordinatorsAndGrouper(t *testing.T) {
	base := map[string]string{"job.name": "j", "task.class": "x", "task.inputs": "mem.a", "systems.mem.samza.factory": "inmem"}
	for _, tt := range []struct{ key, value, want string }{
		{"job.coordinator.factory", "kafka", "job.coordinator.system: is required by job.coordinator.factory=kafka"},
		{"job.coordinator.factory", "org.apache.samza.standalone.PassthroughJobCoordinatorFactory", "Samza's ZooKeeper and passthrough coordinators are not supported"},
		{"job.coordinator.factory", "org.apache.samza.zk.ZkJobCoordinatorFactory", "Samza's ZooKeeper and passthrough coordinators are not supported"},
		{"job.coordinator.factory", "static", ""},
		{"job.systemstreampartition.grouper.factory", "org.apache.samza.container.grouper.stream.GroupBySystemStreamPartitionFactory", "only org.apache.samza.container.grouper.stream.GroupByPartitionFactory is supported"},
		{"job.systemstreampartition.grouper.factory", "org.apache.samza.container.grouper.stream.GroupByPartitionFactory", ""},
		{"job.config.strict", "maybe", "job.config.strict=maybe: must be true or false"},
	} {
		m := map[string]string{tt.key: tt.value}
		for k, v := range base {
			m[k] = v
		}
		_, err := job.Parse(config.New(m))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s=%s: %v", tt.key, tt.value, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s=%s: error %v, want %q", tt.key, tt.value, err, tt.want)
		}
	}
	m := map[string]string{"job.config.strict": "true"}
	for k, v := range base {
		m[k] = v
	}
	if jc, err := job.Parse(config.New(m)); err != nil || !jc.Strict {
		t.Errorf("job.config.strict=true: Strict = %v, %v", jc.Strict, err)
	}
}

func TestOverflowingDurationsAreErrors(t *testing.T) {
	_, err := job.Parse(config.New(map[string]string{
		"job.name": "j", "task.class": "x", "task.inputs": "mem.a", "systems.mem.samza.factory": "inmem",
		"task.commit.ms": "18446744073710", "task.window.ms": "-7",
	}))
	for _, want := range []string{"task.commit.ms=18446744073710: too large", "task.window.ms=-7: must be -1, 0 or a positive number"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}

// pendingDocs are registry keys whose feature the runtime is gaining; their rows come
// with their implementation. Remove a key from here when it is documented.
var pendingDocs = map[string]bool{}

// TestTheConfigurationPageNamesEveryKey keeps docs/configuration.md true to the
// registry: every pattern appears on it in backquotes, with <s> for <system>.
func TestTheConfigurationPageNamesEveryKey(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, k := range job.Keys() {
		if pendingDocs[k.Pattern] {
			continue
		}
		p := strings.ReplaceAll(k.Pattern, "<system>", "<s>")
		if !strings.Contains(page, "`"+p+"`") {
			t.Errorf("docs/configuration.md does not name `%s`", p)
		}
	}
}
