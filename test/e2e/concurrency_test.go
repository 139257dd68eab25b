package e2e

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// stressAnswers are the refusals that concurrent commands may rightly
// get from each other (the state changed under them): anything else a
// command says when it fails is a bug.
var stressAnswers = []string{
	"No such container",
	"is already in use by container",
	"is not running",
	"is not paused",
	"is already paused",
	"is paused",
	"cannot start a paused container",
	"removal of container",
	"marked for removal",
	"You cannot remove a ",
	"volume is in use",
	"no such volume",
	"was removed while the container was created",
}

// TestConcurrentStress drives containers and volumes from several berth
// processes at once (start, stop, kill, restart, pause, rm, prune, volume
// rm and prune) for a while, then checks that nothing was lost (every
// record is consistent with the processes, mounts and files on the host)
// and, once everything is removed, that nothing is left behind. It runs
// 30 s (BERTH_STRESS_DURATION to change); the random choices come from a
// fixed seed per worker, logged for a rerun.
func TestConcurrentStress(t *testing.T) {
	e := newEnv(t)
	duration := 30 * time.Second
	if v := os.Getenv("BERTH_STRESS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("BERTH_STRESS_DURATION: %v", err)
		}
		duration = d
	}
	const workers = 3
	names := []string{"s0", "s1", "s2", "s3"}
	vols := []string{"v0", "v1"}
	ops := []func(r *rand.Rand) []string{
		func(r *rand.Rand) []string {
			return []string{"run", "-d", "--name", pick(r, names), "-v", pick(r, vols) + ":/data", "busybox", "sleep", "1000"}
		},
		func(r *rand.Rand) []string {
			return []string{"run", "-d", "--rm", "--name", pick(r, names), "-v", pick(r, vols) + ":/data", "busybox", "sh", "-c", "echo x >/data/f; sleep 0.1"}
		},
		func(r *rand.Rand) []string {
			return []string{"create", "--name", pick(r, names), "--restart", "on-failure:2", "busybox", "sh", "-c", "sleep 0.2; exit 3"}
		},
		func(r *rand.Rand) []string { return []string{"start", pick(r, names)} },
		func(r *rand.Rand) []string { return []string{"stop", "-t", "0", pick(r, names)} },
		func(r *rand.Rand) []string { return []string{"kill", pick(r, names)} },
		func(r *rand.Rand) []string { return []string{"restart", "-t", "0", pick(r, names)} },
		func(r *rand.Rand) []string { return []string{"pause", pick(r, names)} },
		func(r *rand.Rand) []string { return []string{"unpause", pick(r, names)} },
		func(r *rand.Rand) []string { return []string{"rm", pick(r, names)} },
		func(r *rand.Rand) []string { return []string{"rm", "-f", pick(r, names)} },
		func(r *rand.Rand) []string { return []string{"container", "prune", "-f"} },
		func(r *rand.Rand) []string { return []string{"system", "prune", "-f", "--volumes"} },
		func(r *rand.Rand) []string { return []string{"volume", "rm", pick(r, vols)} },
		func(r *rand.Rand) []string { return []string{"volume", "prune", "-a", "-f"} },
		func(r *rand.Rand) []string { return []string{"ps", "-a"} },
	}
	var mu sync.Mutex
	var failures []string
	counts := map[string]int{}
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for w := range workers {
		seed := int64(w + 1)
		if v := os.Getenv("BERTH_STRESS_SEED"); v != "" {
			fmt.Sscan(v, &seed)
			seed += int64(w)
		}
		t.Logf("worker %d: seed %d", w, seed)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			for time.Now().Before(deadline) {
				args := ops[r.Intn(len(ops))](r)
				res := e.run(args...)
				mu.Lock()
				counts[fmt.Sprintf("%s exit %d", args[0], res.code)]++
				if res.code != 0 && !expectedRefusal(res.stderr) {
					failures = append(failures, fmt.Sprintf("berth %s: %s", strings.Join(args, " "), res))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("commands: %v", counts)
	for i, f := range failures {
		if i == 10 {
			t.Errorf("... and %d more", len(failures)-10)
			break
		}
		t.Error(f)
	}

	// Nothing lost: the records agree with the host. Containers on their
	// way (a --rm one being removed, an on-failure one restarting) settle
	// first.
	var bad []string
	defer func() {
		if t.Failed() && len(bad) > 0 {
			t.Logf("still inconsistent: %s", strings.Join(bad, "; "))
		}
	}()
	eventually(t, 30*time.Second, "a consistent state", func() bool {
		s := e.state(t)
		bad = s.check()
		for id, st := range s.status {
			if st == "restarting" || st == "removing" || st == "running" && s.autoRm[id] {
				bad = append(bad, "still "+st+": "+id)
			}
		}
		return len(bad) == 0
	})
	checkVolumes(t, e)

	// Nothing left behind once everything is removed.
	if ids := strings.Fields(e.must("ps", "-aq")); len(ids) > 0 {
		e.must(append([]string{"rm", "-f", "-v"}, ids...)...)
	}
	e.must("volume", "prune", "-a", "-f")
	eventually(t, 10*time.Second, "nothing left", func() bool {
		s := e.state(t)
		return len(s.status)+len(s.dirs)+len(s.monitors)+len(s.mounts)+len(s.cgroups) == 0
	})
	checkVolumes(t, e)
	if out := strings.TrimSpace(e.must("volume", "ls", "-q")); out != "" {
		t.Errorf("volumes left: %s", out)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.runroot, "locks")); len(ents) > 0 {
		t.Errorf("lock files left: %v", ents)
	}
	assertNoLeftovers(t, e)
}

func pick(r *rand.Rand, from []string) string { return from[r.Intn(len(from))] }

func expectedRefusal(stderr string) bool {
	for _, s := range stressAnswers {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// checkVolumes: every volume listed has its directory, every directory is
// a listed volume, and the trash is empty.
func checkVolumes(t *testing.T, e *env) {
	t.Helper()
	listed := strings.Fields(e.must("volume", "ls", "-q"))
	var dirs []string
	ents, _ := os.ReadDir(filepath.Join(e.root, "volumes"))
	for _, d := range ents {
		if d.Name() == ".trash" {
			if inner, _ := os.ReadDir(filepath.Join(e.root, "volumes", ".trash")); len(inner) > 0 {
				t.Errorf("volume trash left: %v", inner)
			}
			continue
		}
		dirs = append(dirs, d.Name())
	}
	sort.Strings(listed)
	sort.Strings(dirs)
	if strings.Join(listed, " ") != strings.Join(dirs, " ") {
		t.Errorf("volumes listed %v, directories %v", listed, dirs)
	}
	for _, v := range listed {
		if _, err := os.Stat(filepath.Join(e.root, "volumes", v, "_data")); err != nil {
			t.Errorf("volume %s lost its data directory: %v", v, err)
		}
	}
}
