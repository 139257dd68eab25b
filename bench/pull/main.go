// Command pull measures berth's pull and push of a large image against a
// local docker-registry (Debian's distribution 2.8.2), with `docker pull`
// / `docker push` (a dockerd given by DOCKER_HOST) and `skopeo copy` to an
// OCI directory (no extraction) as anchors measured in the same run, in
// turns. Run it as root from the repository: go run ./bench/pull [-n 5].
package main

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/image"
)

type bench struct {
	n      int
	work   string
	berth  string
	cache  string
	docker bool
	// baseline is another berth binary (an older build) whose pull is
	// measured in the same turns, for before/after figures on a loaded
	// machine.
	baseline string
	push     bool
}

func main() {
	var b bench
	flag.IntVar(&b.n, "n", 5, "repetitions")
	flag.StringVar(&b.cache, "cache", "/var/tmp/berth-bench-pull", "where the generated image layout is kept between runs")
	flag.BoolVar(&b.docker, "docker", true, "measure Docker too when DOCKER_HOST answers")
	flag.StringVar(&b.baseline, "baseline", "", "another berth binary (e.g. built from main, berth-shim beside it) whose pull is measured in the same turns")
	flag.BoolVar(&b.push, "push", true, "measure push too")
	flag.Parse()
	if err := b.run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "bench/pull:", err)
		os.Exit(1)
	}
}

func (b *bench) run(ctx context.Context) error {
	work, err := os.MkdirTemp("", "berth-bench-pull-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	defer unmountUnder(work)
	b.work = work
	build := exec.Command("go", "build", "-o", work+"/", "./cmd/berth", "./cmd/berth-shim")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	b.berth = filepath.Join(work, "berth")
	layout, size, csize, err := makeLayout(b.cache)
	if err != nil {
		return err
	}
	reg, stop, err := startRegistry(filepath.Join(work, "reg"))
	if err != nil {
		return err
	}
	defer stop()
	ref := reg + "/bench/big:1"
	if out, err := exec.Command("skopeo", "copy", "-q", "--dest-tls-verify=false", "oci:"+layout+":big", "docker://"+ref).CombinedOutput(); err != nil {
		return fmt.Errorf("skopeo copy to the registry: %v\n%s", err, out)
	}
	dockerOK := b.docker && exec.Command("docker", "version").Run() == nil
	if dockerOK {
		dockerRmiAll() // the bench's dockerd is its own: an earlier run's layers would be reused
	}
	fmt.Printf("# pull and push of an 11-layer image: %.0f MB, %.0f MB compressed; %d runs, medians; registry docker-registry on %s\n\n", float64(size)/1e6, float64(csize)/1e6, b.n, reg)
	fmt.Printf("| measurement | berth | anchor | ratio |\n|---|---|---|---|\n")

	var berthT, skopeoT, dockerT, baseT []time.Duration
	var rss []int64
	for i := 0; i < b.n; i++ {
		baseline := func() error {
			broot := filepath.Join(work, "baseline")
			d, _, err := b.timed("", b.baseline, "--root", broot, "--runroot", broot+"-run", "pull", "-q", ref)
			if err != nil {
				return err
			}
			baseT = append(baseT, d)
			unmountUnder(broot + "-run")
			os.RemoveAll(broot)
			os.RemoveAll(broot + "-run")
			return nil
		}
		// The baseline goes first every other turn, so that neither
		// build always follows the same contender.
		if b.baseline != "" && i%2 == 0 {
			if err := baseline(); err != nil {
				return err
			}
		}
		root := filepath.Join(work, fmt.Sprintf("root%d", i))
		d, maxrss, err := b.timed("", b.berth, "--root", root, "--runroot", root+"-run", "pull", "-q", ref)
		if err != nil {
			return err
		}
		berthT, rss = append(berthT, d), append(rss, maxrss)
		if b.baseline != "" && i%2 == 1 {
			if err := baseline(); err != nil {
				return err
			}
		}
		// Extracted and runnable.
		if out, err := exec.Command(b.berth, "--root", root, "--runroot", root+"-run", "run", "--rm", "--network", "none", ref, "/bin/busybox", "true").CombinedOutput(); err != nil {
			return fmt.Errorf("run the pulled image: %v\n%s", err, out)
		}
		oci := filepath.Join(work, fmt.Sprintf("oci%d", i))
		d, _, err = b.timed("", "skopeo", "copy", "-q", "--src-tls-verify=false", "docker://"+ref, "oci:"+oci+":big")
		if err != nil {
			return err
		}
		skopeoT = append(skopeoT, d)
		os.RemoveAll(oci)
		if dockerOK {
			dockerRmiAll()
			d, _, err = b.timed("", "docker", "pull", "-q", ref)
			if err != nil {
				return err
			}
			dockerT = append(dockerT, d)
		}
		if i < b.n-1 {
			unmountUnder(root + "-run")
			os.RemoveAll(root)
			os.RemoveAll(root + "-run")
		}
	}
	berthMed := median(berthT)
	row("pull into an empty store, extracted", berthMed, median(skopeoT), "skopeo copy to an OCI dir, no extraction")
	if dockerOK {
		row("pull into an empty store, extracted", berthMed, median(dockerT), "docker pull")
	}
	fmt.Printf("| berth pull throughput | %.0f MB/s compressed, %.0f MB/s extracted | | |\n", float64(csize)/1e6/berthMed.Seconds(), float64(size)/1e6/berthMed.Seconds())
	if b.baseline != "" {
		row("pull into an empty store, extracted", berthMed, median(baseT), "berth -baseline build")
	}
	sort.Slice(rss, func(i, j int) bool { return rss[i] < rss[j] })
	fmt.Printf("| berth pull peak RSS (max of %d) | %.1f MiB | | |\n", len(rss), float64(rss[len(rss)-1])/1024)
	fmt.Printf("\nberth pull runs (ms):%s\n", list(berthT))
	if b.baseline != "" {
		fmt.Printf("baseline pull runs (ms):%s\n", list(baseT))
	}
	if dockerOK {
		fmt.Printf("docker pull runs (ms):%s\n", list(dockerT))
	}
	fmt.Printf("skopeo copy runs (ms):%s\n", list(skopeoT))
	if !b.push {
		return nil
	}

	// Push: to a fresh registry each time (so nothing is skipped or
	// mounted), berth from the store it pulled into, docker from its own.
	root := filepath.Join(work, fmt.Sprintf("root%d", b.n-1))
	var pushB, pushD []time.Duration
	for i := 0; i < b.n; i++ {
		preg, pstop, err := startRegistry(filepath.Join(work, fmt.Sprintf("preg%d", i)))
		if err != nil {
			return err
		}
		target := preg + "/bench/pushed:1"
		if out, err := exec.Command(b.berth, "--root", root, "--runroot", root+"-run", "tag", ref, target).CombinedOutput(); err != nil {
			pstop()
			return fmt.Errorf("tag: %v\n%s", err, out)
		}
		d, _, err := b.timed("", b.berth, "--root", root, "--runroot", root+"-run", "push", "-q", target)
		if err != nil {
			pstop()
			return err
		}
		pushB = append(pushB, d)
		if dockerOK {
			target2 := preg + "/bench/docker:1"
			exec.Command("docker", "tag", ref, target2).Run()
			d, _, err := b.timed("", "docker", "push", "-q", target2)
			if err != nil {
				pstop()
				return err
			}
			pushD = append(pushD, d)
			exec.Command("docker", "rmi", target2).Run()
		}
		pstop()
	}
	if dockerOK {
		row("push to an empty registry", median(pushB), median(pushD), "docker push")
	} else {
		fmt.Printf("| push to an empty registry | %s | | |\n", ms(median(pushB)))
	}
	fmt.Printf("| berth push throughput | %.0f MB/s | | |\n", float64(csize)/1e6/median(pushB).Seconds())
	unmountUnder(root + "-run")
	return nil
}

// timed runs a command and returns its wall time and peak RSS (KiB),
// as GNU time reads it: the rusage of a child the bench itself forked
// would count the bench's own memory (exec's accounting of the old mm).
func (b *bench) timed(dir string, name string, args ...string) (time.Duration, int64, error) {
	rssFile := filepath.Join(b.work, "rss")
	cmd := exec.Command("/usr/bin/time", append([]string{"-f", "%M", "-o", rssFile, name}, args...)...)
	cmd.Dir = dir
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	// Each contender starts with no dirty pages of the one before: its
	// own flushes then wait for its own writes only.
	syscall.Sync()
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	var maxrss int64
	raw, _ := os.ReadFile(rssFile)
	fmt.Sscan(strings.TrimSpace(string(raw)), &maxrss)
	return d, maxrss, nil
}

// makeLayout writes (once, then reuses) an OCI layout of the bench image:
// a base layer with busybox, five layers of 50 MB of random bytes and
// five of `seq` output (compressible), gzip-compressed.
func makeLayout(dir string) (string, int64, int64, error) {
	const version = "v1"
	layout := filepath.Join(dir, version)
	stamp := filepath.Join(layout, "sizes")
	if raw, err := os.ReadFile(stamp); err == nil {
		var s, c int64
		fmt.Sscan(string(raw), &s, &c)
		return layout, s, c, nil
	}
	os.RemoveAll(layout)
	if err := os.MkdirAll(filepath.Join(layout, "blobs", "sha256"), 0o755); err != nil {
		return "", 0, 0, err
	}
	var layers []image.Descriptor
	var diffIDs []digest.Digest
	var total, ctotal int64
	addLayer := func(write func(tw *tar.Writer) error) error {
		tmp, err := os.CreateTemp(layout, "layer-")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		cd := digest.NewDigester()
		ud := digest.NewDigester()
		gz, _ := gzip.NewWriterLevel(io.MultiWriter(tmp, cd), gzip.DefaultCompression)
		cw := &counter{w: io.MultiWriter(gz, ud)}
		tw := tar.NewWriter(cw)
		if err := write(tw); err != nil {
			return err
		}
		if err := tw.Close(); err != nil {
			return err
		}
		if err := gz.Close(); err != nil {
			return err
		}
		fi, _ := tmp.Stat()
		tmp.Close()
		d := cd.Digest()
		if err := os.Rename(tmp.Name(), filepath.Join(layout, "blobs", "sha256", d.Encoded())); err != nil {
			return err
		}
		layers = append(layers, image.Descriptor{MediaType: image.MediaTypeImageLayerGzip, Digest: d, Size: fi.Size()})
		diffIDs = append(diffIDs, ud.Digest())
		total += cw.n
		ctotal += fi.Size()
		return nil
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return "", 0, 0, fmt.Errorf("the base layer needs a static busybox: %w", err)
	}
	if err := addLayer(func(tw *tar.Writer) error {
		tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
		tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))})
		_, err := tw.Write(bb)
		return err
	}); err != nil {
		return "", 0, 0, err
	}
	for i := 0; i < 10; i++ {
		i := i
		if err := addLayer(func(tw *tar.Writer) error {
			if i%2 == 0 {
				buf := make([]byte, 50<<20)
				rand.Read(buf)
				tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("random%d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(buf))})
				_, err := tw.Write(buf)
				return err
			}
			var sb strings.Builder
			for n := 10000000 * (i + 1); n < 10000000*(i+1)+6300000; n++ {
				sb.WriteString(strconv.Itoa(n))
				sb.WriteByte('\n')
			}
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("seq%d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(sb.Len())})
			_, err := io.WriteString(tw, sb.String())
			return err
		}); err != nil {
			return "", 0, 0, err
		}
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "config": map[string]any{"Cmd": []string{"/bin/busybox", "true"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	put := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		os.WriteFile(filepath.Join(layout, "blobs", "sha256", d.Encoded()), b, 0o644)
		return d
	}
	m := image.Manifest{Versioned: image.Versioned{SchemaVersion: 2}, MediaType: image.MediaTypeImageManifest,
		Config: image.Descriptor{MediaType: image.MediaTypeImageConfig, Digest: put(cfg), Size: int64(len(cfg))}, Layers: layers}
	mraw, _ := json.Marshal(m)
	idx := image.Index{Versioned: image.Versioned{SchemaVersion: 2}, MediaType: image.MediaTypeImageIndex, Manifests: []image.Descriptor{{
		MediaType: image.MediaTypeImageManifest, Digest: put(mraw), Size: int64(len(mraw)), Annotations: map[string]string{image.AnnotationRefName: "big"}}}}
	iraw, _ := json.Marshal(idx)
	os.WriteFile(filepath.Join(layout, "index.json"), iraw, 0o644)
	os.WriteFile(filepath.Join(layout, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	os.WriteFile(stamp, []byte(fmt.Sprintf("%d %d", total, ctotal)), 0o644)
	return layout, total, ctotal, nil
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// startRegistry runs docker-registry on a free loopback port with its
// storage under dir; stop ends it by its pid.
func startRegistry(dir string) (string, func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	conf := filepath.Join(dir, "config.yml")
	os.WriteFile(conf, []byte(cfg), 0o644)
	cmd := exec.Command("docker-registry", "serve", conf)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		os.RemoveAll(dir)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			res.Body.Close()
			return addr, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("docker-registry did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dockerRmiAll removes every image of the (private) dockerd, so that no
// layer of an earlier pull is reused.
func dockerRmiAll() {
	out, _ := exec.Command("docker", "images", "-aq").Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.Command("docker", append([]string{"rmi", "-f"}, ids...)...).Run()
	}
}

func list(ds []time.Duration) string {
	var s strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&s, " %d", d.Milliseconds())
	}
	return s.String()
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func row(name string, berth, anchor time.Duration, anchorName string) {
	fmt.Printf("| %s | %s | %s (%s) | %.2f |\n", name, ms(berth), ms(anchor), anchorName, berth.Seconds()/anchor.Seconds())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }

// unmountUnder detaches what the built-in runtime left mounted under dir.
func unmountUnder(dir string) {
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	var mounts []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir) {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}
