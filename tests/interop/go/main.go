// Command xds-greeter-client calls greet.Greeter/SayHello through grpc-go's
// own xDS client.
//
// Used by the control plane's interop tests: a standard gRPC xDS client, not
// ours, must balance across greeter servers through the control plane. It
// speaks the same protocol as ../xds_greeter_client.py:
//
//	GRPC_XDS_BOOTSTRAP=bootstrap.json xds-greeter-client --target xds:///greeter --count 300
//	    makes 300 calls and prints one JSON object:
//	    {"ok":N,"failed":N,"by_backend":{"<served_by>":N},"errors":{"<CODE>: <message>":N}}
//
//	GRPC_XDS_BOOTSTRAP=bootstrap.json xds-greeter-client --target xds:///greeter --batches
//	    keeps one channel open and reads a call count per line from standard
//	    input, printing one such JSON object per line read.
//
// The bootstrap comes from GRPC_XDS_BOOTSTRAP (a file) or
// GRPC_XDS_BOOTSTRAP_CONFIG (inline JSON), as for any grpc-go program.
// Requests and replies are encoded by hand with protowire (two string
// fields), so no generated code and no protoc are needed.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	// Registers the xds:/// resolver and the xDS load-balancing policies.
	_ "google.golang.org/grpc/xds"
)

const method = "/greet.Greeter/SayHello"

// rawCodec passes already-encoded protobuf bytes through unchanged. It is
// named "proto" so the wire content type is the usual application/grpc+proto.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// encodeRequest encodes greet.HelloRequest{name}: field 1, a string.
func encodeRequest(name string) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendString(b, name)
}

// decodeServedBy returns greet.HelloReply.served_by (field 2, a string).
func decodeServedBy(data []byte) (string, error) {
	servedBy := ""
	for len(data) > 0 {
		number, wire, n := protowire.ConsumeTag(data)
		if n < 0 {
			return "", protowire.ParseError(n)
		}
		data = data[n:]
		if number == 2 && wire == protowire.BytesType {
			value, m := protowire.ConsumeString(data)
			if m < 0 {
				return "", protowire.ParseError(m)
			}
			servedBy = value
			data = data[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(number, wire, data)
		if m < 0 {
			return "", protowire.ParseError(m)
		}
		data = data[m:]
	}
	return servedBy, nil
}

// codeName spells a status code the way the other languages print it:
// DeadlineExceeded becomes DEADLINE_EXCEEDED.
func codeName(code fmt.Stringer) string {
	var out strings.Builder
	for i, r := range code.String() {
		if i > 0 && unicode.IsUpper(r) {
			out.WriteByte('_')
		}
		out.WriteRune(unicode.ToUpper(r))
	}
	return out.String()
}

type batch struct {
	OK        int            `json:"ok"`
	Failed    int            `json:"failed"`
	ByBackend map[string]int `json:"by_backend"`
	Errors    map[string]int `json:"errors"`
}

func runBatch(conn *grpc.ClientConn, count int, timeout time.Duration) batch {
	result := batch{ByBackend: map[string]int{}, Errors: map[string]int{}}
	for i := 0; i < count; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		request := encodeRequest("interop-" + strconv.Itoa(i))
		var reply []byte
		err := conn.Invoke(ctx, method, &request, &reply)
		cancel()
		var servedBy string
		if err == nil {
			servedBy, err = decodeServedBy(reply)
		}
		if err != nil {
			result.Failed++
			st := status.Convert(err)
			result.Errors[codeName(st.Code())+": "+st.Message()]++
			continue
		}
		result.OK++
		result.ByBackend[servedBy]++
	}
	return result
}

func main() {
	target := flag.String("target", "xds:///greeter", "the channel's target")
	count := flag.Int("count", 300, "calls to make")
	batches := flag.Bool("batches", false, "read call counts from standard input, one batch per line")
	callTimeout := flag.Duration("call-timeout", 20*time.Second, "deadline of each call (the first one waits for xDS)")
	flag.Parse()

	if os.Getenv("GRPC_XDS_BOOTSTRAP") == "" && os.Getenv("GRPC_XDS_BOOTSTRAP_CONFIG") == "" {
		fmt.Fprintln(os.Stderr, "set GRPC_XDS_BOOTSTRAP (a file) or GRPC_XDS_BOOTSTRAP_CONFIG (inline JSON)")
		os.Exit(2)
	}
	conn, err := grpc.NewClient(*target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
	)
	if err != nil {
		fmt.Fprintf(os.Stderr, "creating a channel to %s: %v\n", *target, err)
		os.Exit(1)
	}
	defer conn.Close()

	out := json.NewEncoder(os.Stdout)
	if !*batches {
		if err := out.Encode(runBatch(conn, *count, *callTimeout)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		line := strings.TrimSpace(lines.Text())
		if line == "" {
			continue
		}
		n, err := strconv.Atoi(line)
		if err != nil {
			fmt.Fprintf(os.Stderr, "not a call count: %q\n", line)
			os.Exit(2)
		}
		if err := out.Encode(runBatch(conn, n, *callTimeout)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := lines.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
