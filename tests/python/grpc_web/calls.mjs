// The calls both gRPC-Web clients make (client.mjs in Node, browser.mjs in Chromium): a unary call, a 3-message
// server stream and a call the server refuses; returns what came back.
export async function greeterCalls(client, name) {
  const out = { unary: (await client.sayHello({ name })).message, stream: [] };
  for await (const reply of client.sayHellos({ name, count: 3 })) out.stream.push(reply.message);
  try {
    await client.sayHello({ name: "refuse me" });
    out.error = null;
  } catch (error) {
    out.error = { code: error.code, message: error.rawMessage };
  }
  return out;
}
