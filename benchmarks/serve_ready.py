"""Time `policyengine serve policies/default.policy` from process start to /readyz "ready" (warm compiled cache):
wall seconds and the server process's CPU seconds at that moment. Usage: python benchmarks/serve_ready.py REPO_ROOT [RUNS]"""
import json, os, socket, subprocess, sys, time, urllib.request
root = sys.argv[1]; runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
out = []; cpus = []
for _ in range(runs):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "policyengine", "serve", "policies/default.policy", "--port", str(port),
                          "--no-watch", "--log-level", "warning"], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    body = None
    while time.perf_counter() - t0 < 120:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                body = json.loads(r.read())
                if body.get("status") == "ready":
                    break
        except Exception:
            pass
        time.sleep(0.05)
    took = time.perf_counter() - t0
    f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    p.terminate(); p.wait(10)
    out.append(round(took, 2)); cpus.append(cpu)
    print(round(took, 2), "cpu", cpu, body and body.get("policy", {}).get("digest"), flush=True)
print("median wall", sorted(out)[len(out)//2], "median cpu", sorted(cpus)[len(cpus)//2], "load", os.getloadavg())
