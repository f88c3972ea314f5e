# The servers of compare.sh (sourced): ports, the throwaway certificate, and
# the start of every process. All listen on 127.0.0.1 only.
#
# Targets, each in front of the same upstream (nginx: `return 200`, static
# files), every proxy with one worker:
#   direct        the upstream itself (the baseline for added latency)
#   tracehop-off  tracehop, sampling ratio 0 (no spans)
#   tracehop-on   tracehop, sampling ratio 1, every span exported to a sink
#                 (nginx answering 202 to POST /api/v2/spans)
#   nginx         proxy_pass with upstream keepalive
#   haproxy       mode http
#   caddy         reverse_proxy, GOMAXPROCS=1
# Listeners per target: plain (HTTP/1.1), log (HTTP/1.1, access log on),
# h2c (prior knowledge) and tls (TLS 1.3, h2 and http/1.1 by ALPN). nginx,
# haproxy and Caddy serve all four from one process; tracehop serves HTTP/1.1
# and h2c on one port, and runs one process per configuration (plain, access
# log, TLS). Ports: PORT_BASE + listener offset (plain 0, log 10, h2c 20,
# tls 30) + target offset (direct 0, tracehop-off 1, tracehop-on 2, nginx 3,
# haproxy 4, caddy 5); the span sink at +7, tracehop admin ports at +100 up.

NAMES=(direct tracehop-off tracehop-on nginx haproxy caddy)
declare -A TARGET_OFFSET=([direct]=0 [tracehop-off]=1 [tracehop-on]=2 [nginx]=3 [haproxy]=4 [caddy]=5)
declare -A LISTENER_OFFSET=([plain]=0 [log]=10 [h2c]=20 [tls]=30)
declare -A PIDS
UPSTREAM_PORT=$PORT_BASE
SINK_PORT=$((PORT_BASE + 7))

port_of() {  # TARGET LISTENER : the port, or nothing where that target has no such listener
  case "$1:$2" in
    direct:log) echo "$UPSTREAM_PORT" ;;   # the upstream logs nothing: the baseline stays the same
    tracehop-*:h2c) port_of "$1" plain ;;  # one port for HTTP/1.1 and h2c
    tracehop-off:log | tracehop-off:tls) ;;
    *) echo $((PORT_BASE + ${LISTENER_OFFSET[$2]} + ${TARGET_OFFSET[$1]})) ;;
  esac
}
proc_of() {  # TARGET LISTENER : the process (key of PIDS) serving it
  case "$1:$2" in
    direct:*) echo upstream ;;
    tracehop-on:log) echo tracehop-on-log ;;
    tracehop-on:tls) echo tracehop-on-tls ;;
    *) echo "$1" ;;
  esac
}
url_of() {  # TARGET LISTENER PATH
  local scheme=http
  [ "$2" = tls ] && scheme=https
  echo "$scheme://127.0.0.1:$(port_of "$1" "$2")$3"
}
admin_port() { echo $((PORT_BASE + 100 + $1)); }

port_free() { [ -z "$(ss -ltnH "sport = :$1" 2>/dev/null)" ]; }
wait_up() {  # URL : until something answers there (10 s at most)
  for _ in $(seq 100); do
    curl -sk -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  die "nothing answers on $1 (logs: $OUT/raw/*.log)"
}
start() {  # NAME URL COMMAND... : start in the background, record its pid and its children's
  local name="$1" url="$2" port; shift 2
  port="${url##*:}"; port="${port%%/*}"
  port_free "$port" || die "port $port is taken (for $name); try --port-base"
  echo "$name: $*" >> "$OUT/commands.txt"
  "$@" > "$OUT/raw/$name.log" 2>&1 &
  STARTED+=("$!")
  wait_up "$url"
  PIDS[$name]="$! $( (ps -o pid= --ppid "$!" || true) | tr '\n' ' ')"
}
render() {  # TEMPLATE OUTFILE KEY=VALUE... : fill @KEY@ placeholders
  local template="$1" out="$2" text; shift 2
  text="$(cat "$BENCH/templates/$template")"
  for kv in "$@"; do text="${text//@${kv%%=*}@/${kv#*=}}"; done
  printf '%s\n' "$text" > "$out"
}
listener_vars() {  # TARGET : PORT=.. LOG_PORT=.. H2C_PORT=.. TLS_PORT=.. for render
  echo "PORT=$(port_of "$1" plain)" "LOG_PORT=$(port_of "$1" log)" \
    "H2C_PORT=$(port_of "$1" h2c)" "TLS_PORT=$(port_of "$1" tls)"
}

make_certificate() {  # a throwaway ECDSA P-256 certificate for 127.0.0.1, shared by every target
  local dir="$OUT/run/tls"
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" > "$dir/openssl.log" 2>&1 \
    || die "openssl could not make a certificate (see $dir/openssl.log)"
  cat "$dir/cert.pem" "$dir/key.pem" > "$dir/haproxy.pem"   # haproxy wants both in one file
  CERT="$dir/cert.pem" KEY="$dir/key.pem"
  # The OpenSSL clients (wrk, h2load, openssl s_client) offer TLS 1.3 with
  # AES-128-GCM alone, so every target runs the same cipher whatever its
  # preference order; nginx and haproxy are pinned to it for oha too.
  CLIENT_OPENSSL_CONF="$dir/client-openssl.cnf"
  printf '%s\n' "openssl_conf = conf" "[conf]" "ssl_conf = ssl" "[ssl]" "system_default = tls" \
    "[tls]" "MinProtocol = TLSv1.3" "Ciphersuites = TLS_AES_128_GCM_SHA256" > "$CLIENT_OPENSSL_CONF"
}
check_tls() {  # record what each target's TLS listener negotiates (protocol, cipher, ALPN) in tls.tsv
  local name port text
  printf 'target\tprotocol\tcipher\talpn\n' > "$OUT/tls.tsv"
  for name in "${NAMES[@]}"; do
    port="$(port_of "$name" tls)"
    [ -n "$port" ] || continue
    text="$(OPENSSL_CONF="$CLIENT_OPENSSL_CONF" timeout 5 openssl s_client -connect "127.0.0.1:$port" \
      -alpn h2,http/1.1 < /dev/null 2>/dev/null | tr -d '\0' || true)"   # a session ticket may hold NUL bytes
    # "New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256" comes before any session ticket
    printf '%s\t%s\t%s\t%s\n' "$name" \
      "$(awk -F', ' '/^New, /{print $2; exit}' <<< "$text")" \
      "$(awk '/^New, /{print $NF; exit}' <<< "$text")" \
      "$(awk -F': *' '/^ALPN protocol/{print $2; exit}' <<< "$text")" >> "$OUT/tls.tsv"
  done
}

start_nginx() {  # NAME TEMPLATE KEY=VALUE... (PORT first among them)
  local name="$1" template="$2" dir="$OUT/run/$1" port; shift 2
  port="${1#PORT=}"
  mkdir -p "$dir"
  render "$template" "$dir/nginx.conf" "DIR=$dir" "CERT=$CERT" "KEY=$KEY" "$@"
  start "$name" "http://127.0.0.1:$port/" nginx -p "$dir/" -c "$dir/nginx.conf"
}
start_tracehop() {  # NAME LISTENER RATIO CONFIG [--tls-cert F --tls-key F]
  local name="$1" target="${1%-log}" port admin; target="${target%-tls}"
  port="$(port_of "$target" "$2")"
  admin="$(admin_port $(( ${LISTENER_OFFSET[$2]} + ${TARGET_OFFSET[$target]} )))"
  ADMIN[$name]="$admin"
  start "$name" "$(url_of "$target" "$2" /)" env TOKIO_WORKER_THREADS=1 "$TRACEHOP" run \
    --config "$BENCH/templates/$4" --listen "127.0.0.1:$port" \
    --upstream "http://127.0.0.1:$UPSTREAM_PORT" --admin "127.0.0.1:$admin" \
    --service-name bench --sample-ratio "$3" --zipkin "http://127.0.0.1:$SINK_PORT/api/v2/spans" "${@:5}"
}

start_targets() {
  local www="$OUT/run/www"
  make_certificate
  mkdir -p "$www"
  head -c $((64 * 1024)) /dev/zero | tr '\0' x > "$www/64k"
  head -c $((1024 * 1024)) /dev/zero | tr '\0' x > "$www/1m"
  head -c $((16 * 1024)) /dev/zero | tr '\0' x > "$OUT/run/upload-16k"
  UPLOAD_FILE="$OUT/run/upload-16k"
  start_nginx upstream nginx-upstream.conf $(listener_vars direct) "WWW=$www"
  start_nginx sink nginx-static.conf "PORT=$SINK_PORT" STATUS=202
  start_tracehop tracehop-off plain 0 tracehop.yaml
  start_tracehop tracehop-on plain 1 tracehop.yaml
  if selected get-log; then start_tracehop tracehop-on-log log 1 tracehop-access.yaml; fi
  if selected tls-h1 || selected tls-h2; then
    start_tracehop tracehop-on-tls tls 1 tracehop.yaml --tls-cert "$CERT" --tls-key "$KEY"
  fi
  start_nginx nginx nginx-proxy.conf $(listener_vars nginx) "UPSTREAM=127.0.0.1:$UPSTREAM_PORT"
  mkdir -p "$OUT/run/haproxy"
  render haproxy.cfg "$OUT/run/haproxy/haproxy.cfg" $(listener_vars haproxy) \
    "UPSTREAM=127.0.0.1:$UPSTREAM_PORT" "PEM=$OUT/run/tls/haproxy.pem"
  start haproxy "$(url_of haproxy plain /)" haproxy -db -f "$OUT/run/haproxy/haproxy.cfg"
  mkdir -p "$OUT/run/caddy"
  render Caddyfile "$OUT/run/caddy/Caddyfile" $(listener_vars caddy) "DIR=$OUT/run/caddy" \
    "UPSTREAM=127.0.0.1:$UPSTREAM_PORT" "CERT=$CERT" "KEY=$KEY"
  start caddy "$(url_of caddy plain /)" env GOMAXPROCS=1 XDG_DATA_HOME="$OUT/run/caddy" \
    XDG_CONFIG_HOME="$OUT/run/caddy" caddy run --adapter caddyfile --config "$OUT/run/caddy/Caddyfile"
  for name in upstream sink nginx; do cp "$OUT/run/$name/nginx.conf" "$OUT/raw/$name.conf"; done
  cp "$OUT/run/haproxy/haproxy.cfg" "$OUT/run/caddy/Caddyfile" "$OUT/raw/"
  if selected tls-h1 || selected tls-h2; then check_tls; fi
}
