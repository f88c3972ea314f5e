#!/usr/bin/env python3
"""Checks on the rendered Kubernetes manifests, for scripts/ship-check.sh.

Subcommands (each exits non-zero with every problem listed):
  policy FILE            the rules README.md promises, on a rendered demo
  split FILE CORE CRD    write built-in kinds to CORE and custom ones to CRD
  podmonitor FILE SCHEMA validate every PodMonitor in FILE against SCHEMA
  config FILE KEY OUT    write the tracehop ConfigMap's KEY to OUT
  localize IN OUT K=V..  rewrite a sidecar config for a loopback run
  promql FILE...         print the PromQL of ```promql blocks and dashboards
"""

import json
import re
import sys

import yaml

SIDECAR_IMAGE = "ghcr.io/tracehop/tracehop:0.1.0"
POD_FIELDS = {
    "TRACEHOP_POD_NAME": "metadata.name",
    "TRACEHOP_POD_NAMESPACE": "metadata.namespace",
    "TRACEHOP_NODE_NAME": "spec.nodeName",
    "TRACEHOP_POD_IP": "status.podIP",
}
# The demo app's own drain after SIGTERM (server::ServeOptions default).
APP_GRACE_SECONDS = 5


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def seconds(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)", str(text))
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * scale


def tracehop_configs(docs):
    """The sidecar configs by ConfigMap key, from the tracehop ConfigMap."""
    for d in docs:
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("tracehop-config"):
            return d["metadata"]["name"], {k: yaml.safe_load(v) for k, v in d["data"].items()}
    return None, {}


def check_security(where, sc, problems):
    want = {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
    }
    for key, value in want.items():
        if (sc or {}).get(key) is not value:
            problems.append(f"{where}: securityContext.{key} must be {value}")
    if (sc or {}).get("capabilities", {}).get("drop") != ["ALL"]:
        problems.append(f"{where}: securityContext.capabilities.drop must be [ALL]")
    if (sc or {}).get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: securityContext.seccompProfile must be RuntimeDefault")


def check_sidecar(where, c, problems):
    if c.get("restartPolicy") != "Always":
        problems.append(f"{where}: not a native sidecar (restartPolicy: Always)")
    if c.get("image") != SIDECAR_IMAGE:
        problems.append(f"{where}: image {c.get('image')}, want {SIDECAR_IMAGE}")
    ports = {p["containerPort"]: p.get("name") for p in c.get("ports", [])}
    if set(ports) != {15006, 15000}:
        problems.append(f"{where}: container ports {sorted(ports)}, want 15000 and 15006")
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                        ("startupProbe", "/readyz")]:
        get = c.get(probe, {}).get("httpGet", {})
        port = get.get("port")
        if get.get("path") != path or (port != 15000 and ports.get(15000) != port):
            problems.append(f"{where}: {probe} must GET {path} on the admin port")
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
           for e in c.get("env", [])}
    if env.get("TRACEHOP_SERVICE_NAME") != "metadata.labels['app.kubernetes.io/name']":
        problems.append(f"{where}: TRACEHOP_SERVICE_NAME must come from the name label")
    for name, field in POD_FIELDS.items():
        if env.get(name) != field:
            problems.append(f"{where}: {name} must be the downward API's {field}")
    res = c.get("resources", {})
    if res.get("requests") != {"cpu": "50m", "memory": "16Mi"} or \
            res.get("limits") != {"memory": "64Mi"}:
        problems.append(f"{where}: resources {res}, want requests 50m/16Mi, limit 64Mi")
    check_security(where, c.get("securityContext"), problems)


def config_key(pod, problems, where):
    for v in pod.get("volumes", []):
        cm = v.get("configMap", {})
        if cm.get("name", "").startswith("tracehop-config"):
            items = cm.get("items", [{"key": "config.yaml", "path": "config.yaml"}])
            if len(items) == 1 and items[0]["path"] == "config.yaml":
                return items[0]["key"]
    problems.append(f"{where}: no tracehop-config key mounted as config.yaml")
    return None


def check_config(where, cfg, app_args, grace, pre_stop, problems):
    if cfg["inbound"]["listen"] != "0.0.0.0:15006":
        problems.append(f"{where}: inbound.listen must be 0.0.0.0:15006")
    if cfg["admin"]["listen"] != "0.0.0.0:15000":
        problems.append(f"{where}: admin.listen must be 0.0.0.0:15000")
    listen = app_args[app_args.index("--listen") + 1]
    if not listen.startswith("127.0.0.1:") or cfg["inbound"]["upstream"] != f"http://{listen}":
        problems.append(f"{where}: app must listen on loopback at inbound.upstream")
    wanted = {}
    for i, a in enumerate(app_args):
        if a == "--upstream":
            name, url = app_args[i + 1].split("=", 1)
            wanted[name] = url
    routes = {r["name"]: r for r in cfg.get("outbound", {}).get("routes", [])}
    for name, url in wanted.items():
        r = routes.get(name)
        if not r or url != f"http://{r['listen']}" or not r["listen"].startswith("127.0.0.1:") \
                or r["upstream"] != f"http://{name}:15006":
            problems.append(f"{where}: the app's {name} calls must go through an outbound "
                            f"route 127.0.0.1:PORT -> http://{name}:15006")
    sd, ex = cfg.get("shutdown", {}), cfg.get("export", {})
    flush = seconds(ex.get("shutdown_timeout", "5s")) + seconds(ex.get("timeout", "5s")) + 1
    budget = (pre_stop + APP_GRACE_SECONDS + seconds(sd.get("drain_delay", "0s"))
              + seconds(sd.get("grace_period", "20s")) + flush)
    if seconds(sd.get("drain_delay", "0s")) <= 0:
        problems.append(f"{where}: shutdown.drain_delay must be set")
    if budget >= grace:
        problems.append(f"{where}: shutdown needs up to {budget:g}s, "
                        f"terminationGracePeriodSeconds is {grace}")
    return budget


def policy(path):
    docs = load(path)
    problems, lines = [], []
    _, configs = tracehop_configs(docs)
    services = [d for d in docs if d["kind"] == "Service"]
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        name, tpl = d["metadata"]["name"], d["spec"]["template"]
        pod = tpl["spec"]
        sidecars = [c for c in pod.get("initContainers", []) if c["name"] == "tracehop"]
        if not sidecars:
            continue
        where = f"deployment/{name}"
        check_sidecar(where, sidecars[0], problems)
        ann = tpl["metadata"].get("annotations", {})
        if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != "15000" \
                or ann.get("prometheus.io/path") != "/metrics":
            problems.append(f"{where}: Prometheus scrape annotations missing")
        for c in pod["containers"]:
            check_security(f"{where}/{c['name']}", c.get("securityContext"), problems)
        app = pod["containers"][0]
        pre_stop = app.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        grace = pod.get("terminationGracePeriodSeconds", 30)
        key = config_key(pod, problems, where)
        if key in configs:
            budget = check_config(where, configs[key], app["args"], grace, pre_stop, problems)
            lines.append(f"{name}: shutdown worst case {budget:g}s < {grace}s")
        labels = tpl["metadata"]["labels"]
        for s in services:
            sel = s["spec"]["selector"]
            if all(labels.get(k) == v for k, v in sel.items()):
                for p in s["spec"]["ports"]:
                    if p.get("targetPort") not in (15006, "http"):
                        problems.append(f"service/{s['metadata']['name']}: targets "
                                        f"{p.get('targetPort')}, not the sidecar's 15006")
    if not lines:
        problems.append("no Deployment with a tracehop sidecar and config")
    report(problems, lines)


def split(path, core, crd):
    docs = load(path)
    custom = [d for d in docs if "." in d["apiVersion"].split("/")[0]
              and not d["apiVersion"].startswith(("apps/", "batch/", "networking.k8s.io/",
                                                  "policy/", "autoscaling/"))]
    builtin = [d for d in docs if d not in custom]
    for out, part in [(core, builtin), (crd, custom)]:
        with open(out, "w") as f:
            yaml.safe_dump_all(part, f, sort_keys=False)
    print(f"{len(builtin)} built-in, {len(custom)} custom resources")


def podmonitor(path, schema_path):
    import jsonschema
    with open(schema_path) as f:
        schema = json.load(f)
    monitors = [d for d in load(path) if d["kind"] == "PodMonitor"]
    problems = [f"podmonitor/{m['metadata']['name']}: {e.message} at {list(e.absolute_path)}"
                for m in monitors
                for e in jsonschema.Draft202012Validator(schema).iter_errors(m)]
    if not monitors:
        problems.append("no PodMonitor rendered")
    report(problems, [] if problems else [f"{len(monitors)} PodMonitor valid"])


def config(path, key, out):
    _, configs = tracehop_configs(load(path))
    with open(out, "w") as f:
        yaml.safe_dump(configs[key], f, sort_keys=False)


def configmap(path, prefix, key, out):
    """Writes key `key` of the ConfigMap whose name starts with `prefix`."""
    for d in load(path):
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith(prefix):
            with open(out, "w") as f:
                f.write(d["data"][key])
            return
    sys.exit(f"no ConfigMap {prefix}* in {path}")


def localize(src, out, *pairs):
    """Rewrites listen/upstream/collector addresses; keeps every other key."""
    with open(src) as f:
        cfg = yaml.safe_load(f)
    for pair in pairs:
        dotted, value = pair.split("=", 1)
        node = cfg
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[leaf] = value
    with open(out, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)


def promql(*paths):
    for path in paths:
        text = open(path).read()
        if path.endswith(".json"):
            exprs = re.findall(r'"expr":\s*"((?:[^"\\]|\\.)*)"', text)
            exprs = [json.loads(f'"{e}"') for e in exprs]
        else:
            blocks = re.findall(r"```promql\n(.*?)```", text, re.S)
            exprs = [q.strip() for b in blocks for q in b.split("\n\n")]
            exprs = [" ".join(l for l in q.splitlines() if not l.lstrip().startswith("#"))
                     for q in exprs]
        for e in exprs:
            if e.strip():
                print(e.strip())


def report(problems, lines):
    for line in lines:
        print(line)
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    commands = {"policy": policy, "split": split, "podmonitor": podmonitor,
                "config": config, "configmap": configmap, "localize": localize, "promql": promql}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
