-- Prints one machine-readable line at the end of a wrk run: request count,
-- run time, bytes read, latency percentiles in microseconds, errors of every
-- kind (non-2xx/3xx statuses included). With WRK_UPLOAD_BYTES=N in the
-- environment every request is a POST with an N-byte body (the upload
-- workload).
local upload = tonumber(os.getenv("WRK_UPLOAD_BYTES") or "0")
if upload > 0 then
  wrk.method = "POST"
  wrk.body = string.rep("x", upload)
  wrk.headers["Content-Type"] = "application/octet-stream"
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50=%d p90=%d p99=%d p999=%d max=%d errors=%d bytes=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout, summary.bytes))
end
