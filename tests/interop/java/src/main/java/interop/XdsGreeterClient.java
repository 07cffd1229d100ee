package interop;

import io.grpc.CallOptions;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * Calls greet.Greeter/SayHello through grpc-java's own xDS client.
 *
 * <p>Used by the control plane's interop tests: a standard gRPC xDS client, not ours, must balance
 * across greeter servers through the control plane. It speaks the same protocol as
 * ../xds_greeter_client.py:
 *
 * <pre>
 * GRPC_XDS_BOOTSTRAP=bootstrap.json java -jar xds-greeter-client.jar --target xds:///greeter --count 300
 *     makes 300 calls and prints one JSON object:
 *     {"ok":N,"failed":N,"by_backend":{"served_by":N},"errors":{"CODE: message":N}}
 * GRPC_XDS_BOOTSTRAP=bootstrap.json java -jar xds-greeter-client.jar --target xds:///greeter --batches
 *     keeps one channel open and reads a call count per line from standard input,
 *     printing one such JSON object per line read.
 * </pre>
 *
 * <p>The bootstrap comes from GRPC_XDS_BOOTSTRAP (a file) or GRPC_XDS_BOOTSTRAP_CONFIG (inline
 * JSON), as for any grpc-java program. Requests and replies are encoded by hand (two string
 * fields) through a byte[] marshaller, so no generated code and no protoc are needed.
 */
public final class XdsGreeterClient {
  private static final MethodDescriptor.Marshaller<byte[]> BYTES =
      new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(byte[] value) {
          return new ByteArrayInputStream(value);
        }

        @Override
        public byte[] parse(InputStream stream) {
          try {
            return stream.readAllBytes();
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        }
      };

  private static final MethodDescriptor<byte[], byte[]> SAY_HELLO =
      MethodDescriptor.<byte[], byte[]>newBuilder()
          .setType(MethodDescriptor.MethodType.UNARY)
          .setFullMethodName("greet.Greeter/SayHello")
          .setRequestMarshaller(BYTES)
          .setResponseMarshaller(BYTES)
          .build();

  private XdsGreeterClient() {}

  /** greet.HelloRequest{name}: field 1, a string. */
  static byte[] encodeRequest(String name) {
    byte[] data = name.getBytes(StandardCharsets.UTF_8);
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.write(0x0a);
    writeVarint(out, data.length);
    out.write(data, 0, data.length);
    return out.toByteArray();
  }

  private static void writeVarint(ByteArrayOutputStream out, long value) {
    while ((value & ~0x7FL) != 0) {
      out.write((int) ((value & 0x7F) | 0x80));
      value >>>= 7;
    }
    out.write((int) value);
  }

  /** greet.HelloReply.served_by: field 2, a string; other fields are skipped. */
  static String decodeServedBy(byte[] data) {
    String servedBy = "";
    int[] pos = {0};
    while (pos[0] < data.length) {
      long key = readVarint(data, pos);
      int number = (int) (key >>> 3);
      int wire = (int) (key & 7);
      switch (wire) {
        case 0 -> readVarint(data, pos);
        case 1 -> pos[0] += 8;
        case 5 -> pos[0] += 4;
        case 2 -> {
          int length = (int) readVarint(data, pos);
          if (number == 2) {
            servedBy = new String(data, pos[0], length, StandardCharsets.UTF_8);
          }
          pos[0] += length;
        }
        default -> throw new IllegalArgumentException("wire type " + wire + " in HelloReply");
      }
    }
    return servedBy;
  }

  private static long readVarint(byte[] data, int[] pos) {
    long value = 0;
    for (int shift = 0; ; shift += 7) {
      byte b = data[pos[0]++];
      value |= (long) (b & 0x7F) << shift;
      if ((b & 0x80) == 0) {
        return value;
      }
    }
  }

  private static String batch(ManagedChannel channel, int count, long timeoutMs) {
    Map<String, Integer> byBackend = new TreeMap<>();
    Map<String, Integer> errors = new TreeMap<>();
    int ok = 0;
    for (int i = 0; i < count; i++) {
      try {
        byte[] reply =
            ClientCalls.blockingUnaryCall(
                channel,
                SAY_HELLO,
                CallOptions.DEFAULT.withDeadlineAfter(timeoutMs, TimeUnit.MILLISECONDS),
                encodeRequest("interop-" + i));
        byBackend.merge(decodeServedBy(reply), 1, Integer::sum);
        ok++;
      } catch (StatusRuntimeException e) {
        Status status = e.getStatus();
        errors.merge(status.getCode().name() + ": " + status.getDescription(), 1, Integer::sum);
      }
    }
    return "{\"ok\":" + ok + ",\"failed\":" + (count - ok) + ",\"by_backend\":" + json(byBackend)
        + ",\"errors\":" + json(errors) + "}";
  }

  private static String json(Map<String, Integer> map) {
    StringBuilder out = new StringBuilder("{");
    for (Map.Entry<String, Integer> entry : map.entrySet()) {
      if (out.length() > 1) {
        out.append(',');
      }
      quote(out, entry.getKey());
      out.append(':').append(entry.getValue());
    }
    return out.append('}').toString();
  }

  private static void quote(StringBuilder out, String text) {
    out.append('"');
    for (char c : text.toCharArray()) {
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\n' -> out.append("\\n");
        case '\r' -> out.append("\\r");
        case '\t' -> out.append("\\t");
        default -> {
          if (c < 0x20) {
            out.append(String.format("\\u%04x", (int) c));
          } else {
            out.append(c);
          }
        }
      }
    }
    out.append('"');
  }

  public static void main(String[] args) throws IOException, InterruptedException {
    String target = "xds:///greeter";
    int count = 300;
    boolean batches = false;
    long timeoutMs = 20_000;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--target" -> target = args[++i];
        case "--count" -> count = Integer.parseInt(args[++i]);
        case "--batches" -> batches = true;
        case "--call-timeout-ms" -> timeoutMs = Long.parseLong(args[++i]);
        default -> {
          System.err.println("unknown argument: " + args[i]);
          System.exit(2);
        }
      }
    }
    if (System.getenv("GRPC_XDS_BOOTSTRAP") == null
        && System.getenv("GRPC_XDS_BOOTSTRAP_CONFIG") == null) {
      System.err.println(
          "set GRPC_XDS_BOOTSTRAP (a file) or GRPC_XDS_BOOTSTRAP_CONFIG (inline JSON)");
      System.exit(2);
    }
    ManagedChannel channel =
        Grpc.newChannelBuilder(target, InsecureChannelCredentials.create()).build();
    try {
      if (!batches) {
        System.out.println(batch(channel, count, timeoutMs));
        return;
      }
      BufferedReader in =
          new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
      String line;
      while ((line = in.readLine()) != null) {
        line = line.strip();
        if (line.isEmpty()) {
          continue;
        }
        System.out.println(batch(channel, Integer.parseInt(line), timeoutMs));
        System.out.flush();
      }
    } finally {
      channel.shutdownNow();
      channel.awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
