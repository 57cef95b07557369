// The same calls as client.mjs (calls.mjs), in a browser page: bundled by esbuild (tests/python/test_grpc_web.py)
// with the generated greeter_pb.js, served by the app under test, run by headless Chromium. The result goes to
// window.grpcWebResult (JSON), the failure to window.grpcWebError.
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { greeterCalls } from "./calls.mjs";
import { Greeter } from "./greeter_pb.js";

const client = createClient(Greeter, createGrpcWebTransport({ baseUrl: window.location.origin, useBinaryFormat: true }));
greeterCalls(client, "browser").then(
  (out) => { window.grpcWebResult = JSON.stringify(out); },
  (error) => { window.grpcWebError = String(error && error.stack || error); },
);
