// The same calls as client.mjs, in a browser page: bundled by esbuild (tests/python/test_grpc_web.py) with the
// generated greeter_pb.js, served by the app under test, run by headless Chromium. The result goes to
// window.grpcWebResult (JSON), the failure to window.grpcWebError.
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Greeter } from "./greeter_pb.js";

async function run() {
  const client = createClient(Greeter, createGrpcWebTransport({ baseUrl: window.location.origin, useBinaryFormat: true }));
  const out = { unary: (await client.sayHello({ name: "browser" })).message, stream: [] };
  for await (const reply of client.sayHellos({ name: "browser", count: 3 })) out.stream.push(reply.message);
  try {
    await client.sayHello({ name: "refuse me" });
    out.error = null;
  } catch (error) {
    out.error = { code: error.code, message: error.rawMessage };
  }
  return out;
}

run().then(
  (out) => { window.grpcWebResult = JSON.stringify(out); },
  (error) => { window.grpcWebError = String(error && error.stack || error); },
);
