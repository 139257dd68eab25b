// Command tcpblast is the bench's traffic and lookup tool. It is built
// static so that it runs inside busybox containers too (bind-mounted).
//
//	tcpblast recv -l ADDR          accept connections, drain each, print
//	                               "<bytes> <peer address>" per connection
//	tcpblast send -c ADDR -n BYTES send BYTES, print MB/s
//	tcpblast resolve -s SERVER -n N NAME...
//	                               look NAMEs up N times each at SERVER
//	                               (host:port), print the median in µs
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tcpblast recv|send|resolve ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "recv":
		err = recv(os.Args[2:])
	case "send":
		err = send(os.Args[2:])
	case "resolve":
		err = resolve(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcpblast:", err)
		os.Exit(1)
	}
}

func recv(args []string) error {
	fs := flag.NewFlagSet("recv", flag.ExitOnError)
	addr := fs.String("l", ":5001", "listen address")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Println("listening", ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer conn.Close()
			n := drain(conn)
			// The peer's address is what the receiver saw: the bench
			// checks that published ports keep the client's address.
			fmt.Fprintf(conn, "%d %s\n", n, conn.RemoteAddr())
			fmt.Println(n, conn.RemoteAddr())
		}()
	}
}

// drain reads conn to its end in large reads (io.Discard's own buffer is
// small enough to cost throughput) and returns the byte count.
func drain(conn net.Conn) int64 {
	buf := make([]byte, 1<<20)
	var total int64
	for {
		n, err := conn.Read(buf)
		total += int64(n)
		if err != nil {
			return total
		}
	}
}

func send(args []string) error {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	addr := fs.String("c", "", "address to connect to")
	total := fs.Int64("n", 1<<30, "bytes to send")
	fs.Parse(args)
	conn, err := net.DialTimeout("tcp", *addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, 1<<20)
	start := time.Now()
	var sent int64
	for sent < *total {
		chunk := min(int64(len(buf)), *total-sent)
		n, err := conn.Write(buf[:chunk])
		sent += int64(n)
		if err != nil {
			return err
		}
	}
	conn.(*net.TCPConn).CloseWrite()
	// The receiver's answer arrives once it has read everything: the
	// time covers delivery, not only the sender's buffer.
	reply, _ := io.ReadAll(conn)
	secs := time.Since(start).Seconds()
	fmt.Printf("%.1f MB/s %s", float64(sent)/secs/1e6, reply)
	return nil
}

func resolve(args []string) error {
	fs := flag.NewFlagSet("resolve", flag.ExitOnError)
	server := fs.String("s", "127.0.0.11:53", "name server")
	n := fs.Int("n", 100, "lookups of each name")
	fs.Parse(args)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, *server)
	}}
	var times []time.Duration
	for range *n {
		for _, name := range fs.Args() {
			start := time.Now()
			addrs, err := r.LookupHost(context.Background(), name)
			if err != nil || len(addrs) == 0 {
				return fmt.Errorf("lookup %s: %v", name, err)
			}
			times = append(times, time.Since(start))
		}
	}
	if len(times) == 0 {
		return fmt.Errorf("no names to look up")
	}
	slices.Sort(times)
	fmt.Printf("%d\n", times[len(times)/2].Microseconds())
	return nil
}
