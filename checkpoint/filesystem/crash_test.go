//go:build unix

package filesystem_test

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/checkpoint/filesystem"
	"github.com/sluice-streams/sluice/system"
)

// crashDirEnv tells the test binary, re-executed by TestCrash, to act as the writer.
const crashDirEnv = "SLUICE_TEST_CRASH_WRITER_DIR"

const crashTask = "Partition 0"

var crashSSP = system.NewSSP("kafka", "PageViewEvent", 0)

// TestCrashWriterHelper is the child process of TestCrash: it continues from the
// stored counter and writes checkpoints with an increasing counter as the offset,
// printing each counter after its Write has returned, until it is killed.
func TestCrashWriterHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("only run by TestCrash, as its child process")
	}
	m, err := filesystem.New(dir, job, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	n := 0
	cp, err := m.Read(t.Context(), crashTask)
	switch {
	case errors.Is(err, checkpoint.ErrNoCheckpoint):
	case err != nil:
		t.Fatal(err)
	default:
		if n, err = strconv.Atoi(cp.Offsets[crashSSP]); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("start %d\n", n)
	for {
		n++
		cp := checkpoint.New(map[system.SystemStreamPartition]string{
			crashSSP: strconv.Itoa(n),
			// A second, larger value makes the file span more than one page at times.
			system.NewSSP("kafka", "Clicks", 0): strings.Repeat("7", n%5000),
		})
		if err := m.Write(t.Context(), crashTask, cp); err != nil {
			t.Fatal(err)
		}
		fmt.Println(n)
	}
}

// TestCrash kills a writer process with SIGKILL at random moments and checks after
// each kill that the checkpoint decodes and holds the last counter the writer
// confirmed or the one it was writing.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	const (
		minRounds = 40
		maxRounds = 100
		budget    = 4 * time.Second
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	dir := t.TempDir()

	var (
		last        int // the counter read after the previous round
		haveCP      bool
		rounds      int
		confirmed   int // rounds in which the writer confirmed at least one write
		inFlight    int // rounds that ended with the unconfirmed write on disk
		leftTemp    int // rounds that left a temporary file, which Start removed
		totalWrites int
	)
	begin := time.Now()
	for rounds < maxRounds && (rounds < minRounds || time.Since(begin) < budget) {
		rounds++
		lastConfirmed, wrote, err := crashRound(t, dir, time.Duration(1+rng.IntN(30))*time.Millisecond)
		if err != nil {
			t.Fatalf("round %d: %v", rounds, err)
		}
		if wrote > 0 {
			confirmed++
			totalWrites += wrote
		} else {
			lastConfirmed = last
		}

		if n := len(tempFiles(t, dir)); n > 0 {
			leftTemp++
		}
		m := started(t, dir)
		if left := tempFiles(t, dir); len(left) > 0 {
			t.Fatalf("round %d: Start left the temporary files of the killed writer: %q", rounds, left)
		}
		cp, err := m.Read(t.Context(), crashTask)
		if errors.Is(err, checkpoint.ErrNoCheckpoint) && !haveCP && wrote == 0 {
			continue // killed before its first write ever completed
		}
		if err != nil {
			t.Fatalf("round %d: read after kill: %v", rounds, err)
		}
		got, err := strconv.Atoi(cp.Offsets[crashSSP])
		if err != nil {
			t.Fatalf("round %d: offset %q: %v", rounds, cp.Offsets[crashSSP], err)
		}
		switch got {
		case lastConfirmed:
		case lastConfirmed + 1:
			inFlight++
		default:
			t.Fatalf("round %d: read counter %d, writer confirmed %d", rounds, got, lastConfirmed)
		}
		if want := strings.Repeat("7", got%5000); cp.Offsets[system.NewSSP("kafka", "Clicks", 0)] != want {
			t.Fatalf("round %d: second offset does not match counter %d", rounds, got)
		}
		last, haveCP = got, true
	}
	t.Logf("%d kills in %v: %d rounds with confirmed writes, %d writes confirmed, final counter %d, %d kills left the in-flight write on disk, %d a temporary file",
		rounds, time.Since(begin).Round(time.Millisecond), confirmed, totalWrites, last, inFlight, leftTemp)
	if confirmed < rounds/2 {
		t.Errorf("only %d of %d rounds wrote anything: the kills came too early to test much", confirmed, rounds)
	}
}

// crashRound runs the writer, lets it write for about d once it has started, kills
// it, and returns the last counter it confirmed and how many writes it confirmed.
func crashRound(t *testing.T, dir string, d time.Duration) (lastConfirmed, wrote int, err error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWriterHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	startedCh := make(chan struct{})
	done := make(chan struct{})
	var latest atomic.Int64
	var count atomic.Int64
	var readErr error
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			line := sc.Text()
			if s, ok := strings.CutPrefix(line, "start "); ok && first {
				first = false
				close(startedCh)
				n, err := strconv.Atoi(s)
				if err != nil {
					readErr = err
					return
				}
				latest.Store(int64(n))
				continue
			}
			n, err := strconv.Atoi(line)
			if err != nil {
				continue // test framework chatter
			}
			if int64(n) != latest.Load()+1 {
				readErr = fmt.Errorf("writer printed %d after %d", n, latest.Load())
			}
			latest.Store(int64(n))
			count.Add(1)
		}
	}()
	select {
	case <-startedCh:
		time.Sleep(d)
	case <-done:
	case <-time.After(10 * time.Second):
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	waitErr := cmd.Wait()
	if ws, ok := exitStatus(waitErr); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return 0, 0, fmt.Errorf("writer ended by itself (%v) before the kill; stderr:\n%s", waitErr, stderr.String())
	}
	if readErr != nil {
		return 0, 0, readErr
	}
	return int(latest.Load()), int(count.Load()), nil
}

func exitStatus(err error) (syscall.WaitStatus, bool) {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0, false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ws, ok
}

// tempFiles lists the temporary files in dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".tmp-") {
			names = append(names, de.Name())
		}
	}
	return names
}
