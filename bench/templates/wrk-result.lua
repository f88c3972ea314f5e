-- Prints one machine-readable line at the end of a wrk run: request count,
-- run time and latency percentiles in microseconds, errors of every kind
-- (non-2xx/3xx statuses included).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50=%d p90=%d p99=%d p999=%d max=%d errors=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout))
end
