-- HTTP/1.1 pipelining for wrk: every write carries DEPTH requests back to back.
--
-- Usage: wrk -t1 -c256 -d10s -s bench/tools/wrk/pipeline.lua URL -- 16
--
-- wrk parses the batch once (script_verify_request) and then expects DEPTH
-- responses per write, so "Requests/sec" counts individual responses.
-- wrk's latency figures are NOT meaningful here: it times a whole batch from
-- the first byte written, so only report throughput for pipelined runs.

local batch

init = function(args)
  local depth = tonumber(args[1]) or 16
  if depth < 1 then
    depth = 1
  end
  local parts = {}
  for i = 1, depth do
    parts[i] = wrk.format()
  end
  batch = table.concat(parts)
end

request = function()
  return batch
end
