"""nginx (WebDAV PUT, basic auth on writes) and redis-server for the remote
cache's scripts (scripts/multihost, scripts/bench-remote): started in a
temporary directory on free ports, stopped at the end. Stdlib only; not a
command.
"""
import base64
import os
import shutil
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}")
    return r


def die(text):
    sys.exit(f"FAIL: {text}")


class Servers:
    """nginx (DAV PUT, basic auth on writes) and redis-server."""

    def __init__(self, root, ip):
        self.root = root
        self.ip = ip
        self.procs = []
        self.http_port = free_port()
        self.redis_port = free_port()
        self.data = os.path.join(root, "data")
        self.user, self.password = "gang", base64.b32encode(os.urandom(10)).decode().lower()

    def start(self):
        for tool in ("nginx", "redis-server", "openssl"):
            if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
                die(f"`{tool}` is not installed (scripts/setup installs nginx and redis-server)")
        for sub in ("data", "tmp", "logs"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        hashed = _run(["openssl", "passwd", "-apr1", self.password]).stdout.strip()
        htpasswd = os.path.join(self.root, "htpasswd")
        with open(htpasswd, "w") as f:
            f.write(f"{self.user}:{hashed}\n")
        self.credentials = os.path.join(self.root, "credentials")
        with open(self.credentials, "w") as f:
            f.write(f"{self.user}:{self.password}\n")
        os.chmod(self.credentials, 0o600)
        tmp = os.path.join(self.root, "tmp")
        user = "user root root;" if os.geteuid() == 0 else ""
        listen = "".join(f"listen {ip}:{self.http_port}; " for ip in dict.fromkeys([self.ip, "127.0.0.1"]))
        conf = os.path.join(self.root, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""{user}
worker_processes 2;
daemon off;
pid {self.root}/nginx.pid;
error_log {self.root}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log {self.root}/logs/access.log;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    {listen}
    root {self.data};
    location / {{
      dav_methods PUT;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
      client_max_body_size 0;
      limit_except GET HEAD {{
        auth_basic "gang remote cache";
        auth_basic_user_file {htpasswd};
      }}
    }}
  }}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.procs.append(subprocess.Popen(
            [nginx, "-p", self.root, "-c", conf, "-e", f"{self.root}/logs/error.log"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.root, "logs/nginx.out"), "w")))
        redis = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.procs.append(subprocess.Popen(
            [redis, "--bind", *dict.fromkeys([self.ip, "127.0.0.1"]), "--port", str(self.redis_port), "--save", "",
             "--appendonly", "no", "--dir", self.root, "--protected-mode", "no",
             "--daemonize", "no", "--logfile", f"{self.root}/logs/redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 10
        for port in (self.http_port, self.redis_port):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        die(f"a server did not start on port {port}; see {self.root}/logs")
                    time.sleep(0.05)
        self.url = f"http://{self.ip}:{self.http_port}"
        self.redis = f"redis://{self.ip}:{self.redis_port}"

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def http(method, url, body=None, auth=None):
    """A bare HTTP/1.1 request (stdlib); returns the status."""
    import http.client
    from urllib.parse import urlparse
    u = urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    c.request(method, u.path, body=body, headers=headers)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


