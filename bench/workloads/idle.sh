# The idle-10k workload of compare.sh (sourced): IDLE_CONNS keep-alive
# connections (10,000 unless --idle-conns), each having served one GET, held
# open at once by bench/idle_clients.py; the target's RSS is read before they
# open and once they all sit idle. Called as `wl_idle_10k ROUND TARGET`;
# appends one row to $IDLE10K. Tracing on for tracehop, as in every workload.

define_workload idle-10k plain / 0 idle "$IDLE_CONNS idle keep-alive connections" "tracehop-on nginx haproxy caddy"
wl_idle_10k() {
  local round="$1" name="$2" port pids raw release client before during opened failed secs alive
  port="$(port_of "$name" plain)"
  pids="${PIDS[$(proc_of "$name" plain)]}"
  raw="$OUT/raw/r${round}-idle-10k-${name}.txt"
  release="$OUT/run/idle-release"
  rm -f "$release"
  before="$(rss_kb $pids)"
  timeout 300 "${CLIENT[@]}" python3 "$BENCH/idle_clients.py" 127.0.0.1 "$port" "$IDLE_CONNS" \
    "$release" > "$raw" 2>&1 &
  client=$!
  for _ in $(seq 1200); do   # 120 s at most for every connection to open
    grep -q '^open ' "$raw" 2>/dev/null && break
    kill -0 "$client" 2>/dev/null || break
    sleep 0.1
  done
  sleep 1   # let the server finish with the last responses before reading its memory
  during="$(rss_kb $pids)"
  touch "$release"
  wait "$client" || true
  read -r _ opened failed secs <<< "$(grep '^open ' "$raw" || echo "open 0 $IDLE_CONNS 0")"
  alive="$(awk '/^alive /{print $2}' "$raw")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$IDLE_CONNS" "$opened" "$failed" \
    "${alive:-0}" "$secs" "$before" "$during" >> "$IDLE10K"
  printf '  round %s  %-10s %-13s opened=%s failed=%s alive=%s rss=%s->%s KiB\n' "$round" idle-10k \
    "$name" "$opened" "$failed" "${alive:-0}" "$before" "$during"
}
