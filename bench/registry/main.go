// Command registry benchmarks `berth registry serve` against Debian's
// docker-registry (distribution 2.8.2), the anchor, in the same run:
// clients pull an 11-blob image of ~566 MB (five 50 MB random layers,
// five compressible `seq` layers, gzip; ~321 MB compressed) from each
// registry in parallel, and the bench prints the median throughput of
// each and their ratio. Run it from the repository root:
//
//	go run ./bench/registry [-clients 20] [-rounds 5]
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

type blob struct {
	mediaType string
	digest    string
	path      string
	size      int64
}

func main() {
	clients := flag.Int("clients", 20, "parallel pulls")
	rounds := flag.Int("rounds", 5, "measured rounds per registry (they take turns)")
	flag.Parse()
	if err := run(context.Background(), *clients, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench/registry:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, clients, rounds int) error {
	work, err := os.MkdirTemp("", "berth-bench-registry-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	berth := filepath.Join(work, "berth")
	build := exec.Command("go", "build", "-o", berth, "./cmd/berth")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	fmt.Fprintln(os.Stderr, "making the image...")
	blobs, manifest, err := makeImage(filepath.Join(work, "image"))
	if err != nil {
		return err
	}
	var total int64
	for _, b := range blobs {
		total += b.size
	}

	// berth's registry.
	bAddr := freeAddr()
	bCmd := exec.CommandContext(ctx, berth, "registry", "serve", "-q", "--addr", bAddr, "--root", filepath.Join(work, "berth-root"))
	bCmd.Stderr = os.Stderr
	if err := bCmd.Start(); err != nil {
		return err
	}
	defer stop(bCmd)
	// docker-registry, with a config of our own.
	dAddr := freeAddr()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(work, "dr-root"), dAddr)
	cfgPath := filepath.Join(work, "config.yml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	dCmd := exec.CommandContext(ctx, "docker-registry", "serve", cfgPath)
	if err := dCmd.Start(); err != nil {
		return fmt.Errorf("docker-registry (apt-get install docker-registry): %w", err)
	}
	defer stop(dCmd)

	regs := []struct{ name, addr string }{{"berth registry serve", bAddr}, {"docker-registry 2.8.2", dAddr}}
	for _, r := range regs {
		if err := waitUp(r.addr); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		if err := push(r.addr, blobs, manifest); err != nil {
			return fmt.Errorf("push to %s: %w", r.name, err)
		}
	}
	tr := &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}
	client := &http.Client{Transport: tr}
	// One warm-up round each: both then serve from the page cache.
	for _, r := range regs {
		if _, err := pullAll(client, r.addr, blobs, clients); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
	}
	times := make([][]time.Duration, len(regs))
	for range rounds {
		for i, r := range regs {
			d, err := pullAll(client, r.addr, blobs, clients)
			if err != nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
			times[i] = append(times[i], d)
		}
	}
	mbps := func(d time.Duration) float64 { return float64(total*int64(clients)) / 1e6 / d.Seconds() }
	fmt.Printf("# registry serving, %s, %d CPUs: %d parallel pulls of %d blobs (%.0f MB compressed each), median of %d rounds\n\n",
		time.Now().UTC().Format("2006-01-02 15:04"), numCPU(), clients, len(blobs), float64(total)/1e6, rounds)
	fmt.Printf("| registry | median time | throughput | all rounds |\n|---|---|---|---|\n")
	meds := make([]time.Duration, len(regs))
	for i, r := range regs {
		meds[i] = median(times[i])
		var all []string
		for _, d := range times[i] {
			all = append(all, fmt.Sprintf("%.2f s", d.Seconds()))
		}
		fmt.Printf("| %s | %.2f s | %.0f MB/s | %s |\n", r.name, meds[i].Seconds(), mbps(meds[i]), strings.Join(all, ", "))
	}
	fmt.Printf("\nthroughput ratio berth / docker-registry: %.2fx (above 1 is faster)\n", mbps(meds[0])/mbps(meds[1]))
	fmt.Printf("peak RSS: berth %d MiB, docker-registry %d MiB (VmHWM)\n", hwmMiB(bCmd.Process.Pid), hwmMiB(dCmd.Process.Pid))
	return nil
}

// makeImage writes the blobs: five 50 MB random layers, five `seq`
// layers (about 63 MB each before gzip), a config; and the manifest.
func makeImage(dir string) ([]blob, []byte, error) {
	os.MkdirAll(dir, 0o755)
	var layers []blob
	var diffIDs []string
	for i := range 10 {
		var content func(w io.Writer) error
		if i%2 == 0 {
			content = func(w io.Writer) error { _, err := io.CopyN(w, rand.Reader, 50<<20); return err }
		} else {
			start := i * 10_000_000
			content = func(w io.Writer) error {
				bw := bufio.NewWriterSize(w, 1<<20)
				for n := start; n < start+7_000_000; n++ {
					bw.WriteString(strconv.Itoa(n))
					bw.WriteByte('\n')
				}
				return bw.Flush()
			}
		}
		b, diff, err := layer(dir, fmt.Sprintf("layer%d", i), content)
		if err != nil {
			return nil, nil, err
		}
		layers = append(layers, b)
		diffIDs = append(diffIDs, diff)
	}
	cfgJSON, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	cfg, err := writeBlob(dir, "application/vnd.oci.image.config.v1+json", cfgJSON)
	if err != nil {
		return nil, nil, err
	}
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	}
	var ls []desc
	for _, l := range layers {
		ls = append(ls, desc{l.mediaType, l.digest, l.size})
	}
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc{cfg.mediaType, cfg.digest, cfg.size}, "layers": ls})
	return append([]blob{cfg}, layers...), m, nil
}

// layer writes a gzip tar of one file and returns it and its diff ID.
func layer(dir, name string, content func(io.Writer) error) (blob, string, error) {
	raw := filepath.Join(dir, name+".raw")
	f, err := os.Create(raw)
	if err != nil {
		return blob{}, "", err
	}
	if err := content(f); err != nil {
		return blob{}, "", err
	}
	size, _ := f.Seek(0, io.SeekCurrent)
	f.Seek(0, io.SeekStart)
	out, err := os.Create(filepath.Join(dir, name+".tgz"))
	if err != nil {
		return blob{}, "", err
	}
	defer out.Close()
	zh := sha256.New()
	gw, _ := gzip.NewWriterLevel(io.MultiWriter(out, zh), gzip.DefaultCompression)
	th := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(gw, th))
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)})
	if _, err := io.Copy(tw, f); err != nil {
		return blob{}, "", err
	}
	f.Close()
	os.Remove(raw)
	tw.Close()
	gw.Close()
	fi, _ := out.Stat()
	return blob{"application/vnd.oci.image.layer.v1.tar+gzip", "sha256:" + hex.EncodeToString(zh.Sum(nil)), out.Name(), fi.Size()},
		"sha256:" + hex.EncodeToString(th.Sum(nil)), nil
}

func writeBlob(dir, mt string, b []byte) (blob, error) {
	s := sha256.Sum256(b)
	d := "sha256:" + hex.EncodeToString(s[:])
	p := filepath.Join(dir, hex.EncodeToString(s[:]))
	return blob{mt, d, p, int64(len(b))}, os.WriteFile(p, b, 0o644)
}

// push uploads every blob (POST, then one PUT of the file) and the
// manifest.
func push(addr string, blobs []blob, manifest []byte) error {
	base := "http://" + addr + "/v2/bench/image"
	for _, b := range blobs {
		resp, err := http.Post(base+"/blobs/uploads/", "", nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusAccepted || loc == "" {
			return fmt.Errorf("start upload: %s", resp.Status)
		}
		if !strings.HasPrefix(loc, "http") {
			loc = "http://" + addr + loc
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		f, err := os.Open(b.path)
		if err != nil {
			return err
		}
		req, _ := http.NewRequest(http.MethodPut, loc+sep+"digest="+b.digest, f)
		req.ContentLength = b.size
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err = http.DefaultClient.Do(req)
		f.Close()
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("upload %s: %s", b.digest, resp.Status)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, base+"/manifests/latest", bytes.NewReader(manifest))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("manifest: %s", resp.Status)
	}
	return nil
}

// pullAll runs n clients, each GETting the manifest and every blob (the
// blobs in parallel, as docker and berth pull), and times the whole.
func pullAll(client *http.Client, addr string, blobs []blob, n int) (time.Duration, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n*(len(blobs)+1))
	get := func(path string, want int64) {
		defer wg.Done()
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		resp, err := client.Do(req)
		if err != nil {
			errs <- err
			return
		}
		got, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || (want >= 0 && got != want) {
			errs <- fmt.Errorf("GET %s: %s, %d bytes, %v", path, resp.Status, got, err)
		}
	}
	for range n {
		wg.Add(1)
		go get("/v2/bench/image/manifests/latest", -1)
		for _, b := range blobs {
			wg.Add(1)
			go get("/v2/bench/image/blobs/"+b.digest, b.size)
		}
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitUp(addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func hwmMiB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb / 1024
		}
	}
	return 0
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
