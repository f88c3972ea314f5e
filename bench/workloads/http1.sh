# HTTP/1.1 workloads of compare.sh (sourced): one function per workload,
# called as `wl_NAME LOAD URL RAW` for one recorded run, LOAD being `sat`
# (closed loop, wrk) or `rate:R` (R req/s, oha with latency correction).
# run_client, WRK_RESULT, OHA_RATE (oha -z ..., without -c), UPLOAD_FILE,
# CONNS, RATE_CONNS and DURATION come from compare.sh, as does
# `define_workload NAME LISTENER PATH BYTES RATES TITLE [TARGETS]`: LISTENER
# is one of bench/targets.sh (plain, log, h2c, tls), BYTES the body each
# request moves (for MB/s), RATES its fixed rates ("idle": idle-10k's own
# measurement), TARGETS all but tracehop-off unless given.

define_workload get plain / 0 "$RATES" "keep-alive GET" "direct tracehop-off tracehop-on nginx haproxy caddy"
wl_get() {
  case "$1" in
    sat) run_client "$3" wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$WRK_RESULT" "$2" ;;
    *) run_client "$3" "${OHA_RATE[@]}" -c "$RATE_CONNS" -q "${1#rate:}" "$2" ;;
  esac
}

# Every proxy writes one line per request to a file (tracehop
# log.access_log: true; nginx `access_log combined buffer=64k flush=1s`;
# haproxy `option httplog` to stdout; Caddy `log { output file }`); direct
# is the upstream, which logs nothing.
define_workload get-log log / 0 "$OTHER_RATES" "keep-alive GET, access log on in every proxy"
wl_get_log() { wl_get "$@"; }

# A new TCP connection per request: the client asks for `Connection: close`.
define_workload close plain / 0 "$OTHER_RATES" "a new connection per request (Connection: close)"
wl_close() {
  case "$1" in
    sat) run_client "$3" wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "Connection: close" -s "$WRK_RESULT" "$2" ;;
    *) run_client "$3" "${OHA_RATE[@]}" -c "$RATE_CONNS" --disable-keepalive -q "${1#rate:}" "$2" ;;
  esac
}

# Large responses: static files served by the upstream (nginx sendfile).
# Saturating only: the figures are MB/s and CPU per MB.
define_workload 64k plain /bytes/64k $((64 * 1024)) "" "64 KiB responses"
wl_64k() { wl_get "$@"; }
define_workload 1m plain /bytes/1m $((1024 * 1024)) "" "1 MiB responses"
wl_1m() { wl_get "$@"; }

# 16 KiB request bodies (POST, Content-Length), answered 200 by the upstream.
define_workload upload plain / $((16 * 1024)) "$OTHER_RATES" "16 KiB uploads (POST)"
wl_upload() {
  case "$1" in
    sat) WRK_UPLOAD_BYTES=$((16 * 1024)) run_client "$3" wrk -t1 -c"$CONNS" -d"${DURATION}s" \
           -s "$WRK_RESULT" "$2" ;;
    *) run_client "$3" "${OHA_RATE[@]}" -c "$RATE_CONNS" -m POST -D "$UPLOAD_FILE" -T application/octet-stream \
         -q "${1#rate:}" "$2" ;;
  esac
}

# TLS 1.3 with HTTP/1.1 (wrk offers no ALPN, so every server speaks
# http/1.1), the same certificate in every target.
define_workload tls-h1 tls / 0 "$OTHER_RATES" "TLS 1.3, HTTP/1.1 keep-alive GET"
wl_tls_h1() {
  case "$1" in
    sat) run_client "$3" wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$WRK_RESULT" "$2" ;;
    *) run_client "$3" "${OHA_RATE[@]}" -c "$RATE_CONNS" --insecure -q "${1#rate:}" "$2" ;;
  esac
}
