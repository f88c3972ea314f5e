# HTTP/2 workloads of compare.sh (sourced), called as `wl_NAME LOAD URL RAW`
# like those of http1.sh. Saturating runs use h2load (nghttp2-client) with
# H2_CONNS connections of H2_STREAMS concurrent streams each; fixed rates use
# oha --http2 with the same connections and streams (-c, -p). h2load reports
# no percentiles, only min/mean/max: the saturating rows carry no latency.

H2_CONNS=16
H2_STREAMS=10

# HTTP/2 cleartext with prior knowledge (RFC 9113 §3.3): no Upgrade, no ALPN.
define_workload h2c h2c / 0 "$OTHER_RATES" "h2c (prior knowledge), $H2_CONNS connections × $H2_STREAMS streams"
wl_h2c() {
  case "$1" in
    sat) run_client "$3" h2load -t1 -c"$H2_CONNS" -m"$H2_STREAMS" -D"$DURATION" "$2" ;;
    *) run_client "$3" "${OHA_RATE[@]}" --http2 -c "$H2_CONNS" -p "$H2_STREAMS" -q "${1#rate:}" "$2" ;;
  esac
}

# HTTP/2 over TLS 1.3, negotiated by ALPN, the same certificate everywhere.
define_workload tls-h2 tls / 0 "$OTHER_RATES" "TLS 1.3, HTTP/2 (ALPN h2), $H2_CONNS connections × $H2_STREAMS streams"
wl_tls_h2() {
  case "$1" in
    sat) run_client "$3" h2load -t1 -c"$H2_CONNS" -m"$H2_STREAMS" -D"$DURATION" "$2" ;;
    *) run_client "$3" "${OHA_RATE[@]}" --http2 --insecure -c "$H2_CONNS" -p "$H2_STREAMS" \
         -q "${1#rate:}" "$2" ;;
  esac
}
