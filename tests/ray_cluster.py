"""A real multi-node Ray cluster on this machine, bound to 127.0.0.1, for tests.

Each node is a ``ray start --block`` process in its own session with its own temp
folder and ports, so a test can stop one node (kill its process group) without
touching any other Ray on the machine (``ray stop`` would kill them all).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ports() -> list[str]:
    low = free_port()
    return [
        "--node-manager-port", str(free_port()),
        "--object-manager-port", str(free_port()),
        "--metrics-export-port", str(free_port()),
        "--runtime-env-agent-port", str(free_port()),
        "--dashboard-agent-listen-port", str(free_port()),
        "--dashboard-agent-grpc-port", str(free_port()),
        "--min-worker-port", str(20000 + low % 20000), "--max-worker-port", str(20000 + low % 20000 + 200),
    ]  # fmt: skip


@dataclass
class Node:
    process: subprocess.Popen
    temp_dir: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=30)
        # raylet and friends may have left the session; find them by their temp folder
        subprocess.run(["pkill", "-9", "-f", str(self.temp_dir)], check=False)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@dataclass
class Cluster:
    root: Path
    address: str = ""
    nodes: list[Node] = field(default_factory=list)

    dashboard: str = ""

    def start_head(self, cpus: int = 1, dashboard: bool = False) -> str:
        """Start the head; with ``dashboard`` it also serves the job API (for `ray job submit`)."""
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        args = ["--head", "--port", str(port), "--ray-client-server-port", str(free_port())]
        if dashboard:
            dash_port = free_port()
            self.dashboard = f"http://127.0.0.1:{dash_port}"
            args += ["--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash_port)]
        else:
            args += ["--include-dashboard", "false"]
        self._start(args, cpus, "head")
        self._wait_until_up(cpus)
        return self.address

    def add_worker(self, cpus: int = 1) -> Node:
        before = self._cpus()
        node = self._start(["--address", self.address], cpus, f"worker{len(self.nodes)}")
        self._wait_until_up(before + cpus)
        return node

    def _start(self, args: list[str], cpus: int, name: str) -> Node:
        # Ray puts AF_UNIX sockets under the temp dir: keep its path short (107-byte limit).
        temp = Path(tempfile.mkdtemp(prefix=f"ray{name[:2]}", dir="/tmp"))
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        cmd = [RAY, "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus),
               "--temp-dir", str(temp), "--disable-usage-stats", *_ports(), *args]
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / f"{name}.log", "w")
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        node = Node(process, temp)
        self.nodes.append(node)
        return node

    def _cpus(self) -> int:
        probe = (
            "import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False);"
            "print(int(sum(n['Resources'].get('CPU', 0) for n in ray.nodes() if n['Alive'])))"
        )
        try:
            out = subprocess.run([sys.executable, "-c", probe, self.address], capture_output=True, text=True,
                                 timeout=60)
        except subprocess.TimeoutExpired:
            return 0  # a node still starting can make a driver wait: ask again until the deadline
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0

    def _wait_until_up(self, cpus: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(n.process.poll() is not None for n in self.nodes):
                logs = "\n".join(p.read_text()[-2000:] for p in self.root.glob("*.log"))
                raise RuntimeError(f"a ray node exited early:\n{logs}")
            if self._cpus() >= cpus:
                return
            time.sleep(1)
        raise TimeoutError(f"ray cluster at {self.address} did not reach {cpus} CPUs")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
