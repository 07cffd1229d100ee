// go-xds-peer: go-control-plane's snapshot cache and ADS server, driven like
// the benchmark's own control-plane host (bench/src/cphost.rs) so that
// `bench propagation` measures both the same way.
//
// The protocol is one JSON line per command on standard input and one JSON
// line per reply on standard output:
//
//   - first, unasked: {"addr": "127.0.0.1:PORT"};
//   - "create N": service greeter with N ready endpoints -> {"ok": true};
//   - "flip I,J,...": toggles the readiness of endpoints I, J, ... one
//     SetSnapshot each, back to back -> {"first_ns": .., "last_ns": ..},
//     CLOCK_MONOTONIC read just before the first and the last SetSnapshot;
//   - "stats" -> {"cpu_ns": .., "rss_bytes": .., "clients": ..}.
//
// End of input stops the server and the process.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
)

// oneGroup puts every node in one group, so one SetSnapshot serves all
// subscribers (the snapshot cache keys snapshots by this hash).
type oneGroup struct{}

func (oneGroup) ID(*core.Node) string { return "all" }

const group = "all"

func monotonicNs() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Sec)*1_000_000_000 + uint64(ts.Nsec)
}

func cpuNs() uint64 {
	var usage unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	nanos := func(tv unix.Timeval) uint64 {
		return uint64(tv.Sec)*1_000_000_000 + uint64(tv.Usec)*1_000
	}
	return nanos(usage.Utime) + nanos(usage.Stime)
}

func rssBytes() uint64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

func main() {
	endpointPort := flag.Uint("endpoint-port", 8080, "port of every endpoint the service lists")
	flag.Parse()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cache := cachev3.NewSnapshotCache(true, oneGroup{}, nil)
	var clients atomic.Int64
	callbacks := serverv3.CallbackFuncs{
		StreamOpenFunc: func(context.Context, int64, string) error {
			clients.Add(1)
			return nil
		},
		StreamClosedFunc: func(int64, *core.Node) { clients.Add(-1) },
	}
	xds := serverv3.NewServer(ctx, cache, callbacks)
	grpcServer := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(grpcServer, xds)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	go func() {
		if err := grpcServer.Serve(listener); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
		}
	}()

	out := bufio.NewWriter(os.Stdout)
	reply := func(value any) {
		line, _ := json.Marshal(value)
		out.Write(line)
		out.WriteByte('\n')
		out.Flush()
	}
	reply(map[string]string{"addr": listener.Addr().String()})

	state := newService(uint32(*endpointPort))
	input := bufio.NewScanner(os.Stdin)
	for input.Scan() {
		command, rest, _ := strings.Cut(input.Text(), " ")
		switch command {
		case "create":
			n, err := strconv.Atoi(strings.TrimSpace(rest))
			if err != nil || n < 0 {
				reply(map[string]string{"error": fmt.Sprintf("bad count %q", rest)})
				continue
			}
			state.create(n)
			if err := cache.SetSnapshot(ctx, group, state.snapshot()); err != nil {
				reply(map[string]string{"error": err.Error()})
				continue
			}
			reply(map[string]bool{"ok": true})
		case "flip":
			indices, err := parseIndices(rest, len(state.ready))
			if err != nil {
				reply(map[string]string{"error": err.Error()})
				continue
			}
			stamps := make([]uint64, 0, len(indices))
			for _, i := range indices {
				state.toggle(i)
				// As the Rust host stamps before the upsert that turns its
				// model into xDS resources: stamp, then build and set.
				stamps = append(stamps, monotonicNs())
				if err := cache.SetSnapshot(ctx, group, state.snapshot()); err != nil {
					fmt.Fprintln(os.Stderr, "SetSnapshot:", err)
				}
			}
			reply(map[string]uint64{"first_ns": stamps[0], "last_ns": stamps[len(stamps)-1]})
		case "stats":
			reply(map[string]uint64{
				"cpu_ns":    cpuNs(),
				"rss_bytes": rssBytes(),
				"clients":   uint64(max(clients.Load(), 0)),
			})
		default:
			reply(map[string]string{"error": fmt.Sprintf("unknown command %q", command)})
		}
	}
	grpcServer.Stop()
}

func parseIndices(text string, n int) ([]int, error) {
	var indices []int
	for _, field := range strings.Split(text, ",") {
		i, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || i < 0 || i >= n {
			return nil, fmt.Errorf("bad endpoint indices %q", text)
		}
		indices = append(indices, i)
	}
	if len(indices) == 0 {
		return nil, fmt.Errorf("no endpoint indices")
	}
	return indices, nil
}
