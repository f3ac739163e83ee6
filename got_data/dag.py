"""`dag.yaml`: the whole recipe as one idempotent pipeline of dataset nodes and mixtures.

A node is one `got-data build` (engine, count, params, inputs). An input written
``node:NAME`` is the output folder of node NAME, which makes an edge; ``after:``
adds edges by hand. Mixtures combine node outputs with weights into a mixture
file that `got-data export` reads. Every node is rebuilt only when its own config
or the fingerprint of something it depends on changed; otherwise it resumes.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engines import UnknownEngine, get_engine
from engines.base import ParamError, stable_hash
from got_data.build import BuildRequest, BuildSummary, build, dataset_status, resolve_config
from got_data.errors import UserError
from manifests.mixture import write_mixture

NODE_PREFIX = "node:"
STATE_NAME = "dag-state.json"
REPORT_NAME = "run-report.json"
_NODE_KEYS = {"engine", "count", "params", "inputs", "after", "seed", "shard_size"}
_MIX_KEYS = {"weights", "size", "seed"}
_TOP_KEYS = {"version", "out", "seed", "shard_size", "nodes", "mixtures"}


class DagError(UserError):
    pass


@dataclass
class Node:
    name: str
    engine: str
    count: int
    params: dict[str, Any]
    inputs: list[str]
    after: list[str]
    seed: int
    shard_size: int

    @property
    def needs(self) -> list[str]:
        refs = [i[len(NODE_PREFIX):] for i in self.inputs if i.startswith(NODE_PREFIX)]
        return sorted(set(refs) | set(self.after))


@dataclass
class Mixture:
    name: str
    weights: dict[str, float]
    size: int | None
    seed: int


@dataclass
class Dag:
    path: Path
    out: str
    nodes: dict[str, Node]
    mixtures: dict[str, Mixture] = field(default_factory=dict)

    def node_out(self, name: str) -> str:
        return f"{self.out.rstrip('/')}/{name}"

    def order(self) -> list[str]:
        """Nodes in dependency order (Kahn); a cycle is an error."""
        indegree = {name: len(node.needs) for name, node in self.nodes.items()}
        ready = sorted(name for name, d in indegree.items() if d == 0)
        order = []
        while ready:
            name = ready.pop(0)
            order.append(name)
            for other in sorted(self.nodes):
                if name in self.nodes[other].needs:
                    indegree[other] -= 1
                    if indegree[other] == 0:
                        ready.append(other)
        if len(order) != len(self.nodes):
            cycle = sorted(set(self.nodes) - set(order))
            raise DagError(f"{self.path}: nodes form a cycle: {', '.join(cycle)}")
        return order

    def with_ancestors(self, names: list[str]) -> set[str]:
        keep: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name not in self.nodes:
                raise DagError(f"--only {name}: no such node (nodes: {', '.join(self.nodes)})")
            if name not in keep:
                keep.add(name)
                todo += self.nodes[name].needs
        return keep


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise DagError(message)


def _no_unknown_keys(spec: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise DagError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def load_dag(path: str | os.PathLike) -> Dag:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DagError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise DagError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    _require(isinstance(raw, dict), f"{path}: expected a mapping at the top")
    _no_unknown_keys(raw, _TOP_KEYS, str(path))
    _require(raw.get("version", 1) == 1, f"{path}: unsupported version {raw.get('version')!r}")
    base = path.parent
    out = str(raw.get("out", "data"))
    if "://" not in out and not os.path.isabs(out):
        out = str((base / out).resolve())
    seed, shard_size = raw.get("seed", 0), raw.get("shard_size", 1000)
    nodes_raw = raw.get("nodes") or {}
    _require(isinstance(nodes_raw, dict) and nodes_raw, f"{path}: 'nodes' must be a non-empty mapping")
    nodes = {name: _node(path, base, name, spec, seed, shard_size) for name, spec in nodes_raw.items()}
    for node in nodes.values():
        for need in node.needs:
            _require(need in nodes, f"{path}: node {node.name!r} needs unknown node {need!r}")
    mixtures = {name: _mixture(path, name, spec, nodes, seed) for name, spec in (raw.get("mixtures") or {}).items()}
    dag = Dag(path, out, nodes, mixtures)
    dag.order()
    return dag


def _node(path: Path, base: Path, name: str, spec: Any, seed: int, shard_size: int) -> Node:
    where = f"{path}: node {name!r}"
    _require(isinstance(spec, dict), f"{where}: expected a mapping")
    _no_unknown_keys(spec, _NODE_KEYS, where)
    _require("engine" in spec, f"{where}: missing 'engine'")
    try:
        cls = get_engine(str(spec["engine"]))
        params = cls.resolve_params({k: v for k, v in (spec.get("params") or {}).items()})
    except (UnknownEngine, ParamError) as exc:
        raise DagError(f"{where}: {exc}") from None
    count = spec.get("count")
    _require(isinstance(count, int) and not isinstance(count, bool) and count > 0, f"{where}: 'count' must be a positive integer")
    inputs = []
    for item in spec.get("inputs") or []:
        item = str(item)
        if not item.startswith(NODE_PREFIX) and "://" not in item:
            resolved = item if os.path.isabs(item) else str((base / item).resolve())
            _require(os.path.exists(resolved), f"{where}: input {item!r} does not exist ({resolved})")
            # Relative to where the run starts when inside it: sources named in manifests then do not
            # depend on where the checkout lives, so the same recipe gives the same bytes anywhere.
            relative = os.path.relpath(resolved)
            item = relative if not relative.startswith("..") else resolved
        inputs.append(item)
    _require(not (inputs and cls.inputs == "none"), f"{where}: engine {cls.name!r} takes no inputs")
    after = [str(a) for a in spec.get("after") or []]
    return Node(name, str(spec["engine"]), count, params, inputs, after, int(spec.get("seed", seed)),
                int(spec.get("shard_size", shard_size)))


def _mixture(path: Path, name: str, spec: Any, nodes: dict[str, Node], seed: int) -> Mixture:
    where = f"{path}: mixture {name!r}"
    _require(isinstance(spec, dict) and isinstance(spec.get("weights"), dict) and spec["weights"],
             f"{where}: needs a non-empty 'weights' mapping of node: weight")
    _no_unknown_keys(spec, _MIX_KEYS, where)
    weights = {}
    for node, weight in spec["weights"].items():
        _require(node in nodes, f"{where}: weight for unknown node {node!r}")
        ok = isinstance(weight, int | float) and not isinstance(weight, bool) and math.isfinite(weight) and weight > 0
        _require(ok, f"{where}: weight of {node!r} must be a positive number, not {weight!r}")
        weights[node] = float(weight)
    size = spec.get("size")
    _require(size is None or (isinstance(size, int) and size > 0), f"{where}: 'size' must be a positive integer")
    return Mixture(name, weights, size, int(spec.get("seed", seed)))


def scaled(count: int, scale: float) -> int:
    return max(1, math.ceil(count * scale))


@dataclass
class NodePlan:
    node: Node
    request: BuildRequest
    fingerprint: str
    state: str  # complete | partial | empty | changed | upstream-changed | foreign
    shards_done: int
    shards_planned: int
    detail: str = ""


class DagRunner:
    def __init__(self, dag: Dag, scale: float = 1.0, only: list[str] | None = None,
                 workers: int | None = None, address: str | None = None) -> None:
        if not (scale > 0 and math.isfinite(scale)):
            raise DagError(f"--scale must be a positive number, not {scale}")
        self.dag, self.scale, self.workers, self.address = dag, scale, workers, address
        self.selected = dag.with_ancestors(only) if only else set(dag.nodes)
        self.state_path = Path(dag.out) / STATE_NAME if "://" not in dag.out else None

    def _request(self, node: Node) -> BuildRequest:
        inputs = [self.dag.node_out(i[len(NODE_PREFIX):]) if i.startswith(NODE_PREFIX) else i for i in node.inputs]
        return BuildRequest(engine=node.engine, n=scaled(node.count, self.scale), out=self.dag.node_out(node.name),
                            seed=node.seed, shard_size=node.shard_size, workers=self.workers, address=self.address,
                            inputs=inputs, params=node.params, progress=False)

    def _stored_state(self) -> dict[str, str]:
        if self.state_path and self.state_path.is_file():
            return json.loads(self.state_path.read_text())
        return {}

    def plan(self) -> list[NodePlan]:
        """Status of every selected node. Inputs of nodes whose upstream is not built yet are not read."""
        stored, fingerprints, plans = self._stored_state(), {}, []
        for name in self.dag.order():
            if name not in self.selected:
                continue
            node = self.dag.nodes[name]
            request = self._request(node)
            upstream = [fingerprints.get(n, "") for n in node.needs]
            waiting = any(p.state != "complete" for p in plans if p.node.name in node.needs)
            if waiting:
                fp = stable_hash([node.engine, node.params, node.seed, node.shard_size, node.inputs, upstream])
                plans.append(NodePlan(node, request, fp, "waits", 0, 0, "after " + ", ".join(node.needs)))
                fingerprints[name] = fp
                continue
            _, config, _ = resolve_config(request)
            fp = stable_hash([config.fingerprint(), upstream])
            fingerprints[name] = fp
            status = dataset_status(request)
            state = status.state
            if state in ("complete", "partial") and stored.get(name) not in (None, fp):
                state = "upstream-changed"
            plans.append(NodePlan(node, request, fp, state, status.shards_done, status.shards_planned, status.detail))
        return plans

    def run(self, log: Any = print) -> dict[str, Any]:
        started = time.monotonic()
        report: dict[str, Any] = {"dag": str(self.dag.path), "scale": self.scale, "nodes": {}, "mixtures": {}}
        lock = threading.Lock()
        stored = self._stored_state()
        self._init_ray()
        done: set[str] = set()
        order = [n for n in self.dag.order() if n in self.selected]
        fingerprints: dict[str, str] = {}
        # In-process builds (--workers 0) share this process's renderers, so they take turns;
        # with Ray each node's shards run in worker processes and nodes go side by side.
        parallel = 1 if self.workers == 0 else max(1, len(order))
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            running: dict[Future, str] = {}
            pending = list(order)
            while pending or running:
                for name in list(pending):
                    if all(need in done for need in self.dag.nodes[name].needs):
                        pending.remove(name)
                        running[pool.submit(self._run_node, name, fingerprints, stored, lock, log)] = name
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    report["nodes"][name] = future.result()  # a failed node stops the run with its error
                    done.add(name)
        for mixture in self.dag.mixtures.values():
            if set(mixture.weights) <= done:
                report["mixtures"][mixture.name] = self._write_mixture(mixture)
        report["seconds"] = round(time.monotonic() - started, 3)
        self._save_state(stored)
        self._write_report(report)
        return report

    def _init_ray(self) -> None:
        if self.workers == 0:
            return
        from got_data.executor import RayExecutor

        # One Ray for all nodes: builds running side by side share it instead of each starting its own.
        self._ray = RayExecutor(self.workers, self.address)

    def close(self) -> None:
        if getattr(self, "_ray", None) is not None:
            self._ray.close()

    def _run_node(self, name: str, fingerprints: dict[str, str], stored: dict[str, str],
                  lock: threading.Lock, log: Any) -> dict[str, Any]:
        node = self.dag.nodes[name]
        request = self._request(node)
        _, config, _ = resolve_config(request)
        with lock:
            fp = stable_hash([config.fingerprint(), [fingerprints.get(n, "") for n in node.needs]])
            fingerprints[name] = fp
        status = dataset_status(request)
        if status.state == "changed" or (status.state in ("complete", "partial") and stored.get(name) not in (None, fp)):
            request.overwrite = True  # own params or something upstream changed: rebuild this node
        state_before = status.state if not request.overwrite else "rebuilt"
        log(f"[{name}] {node.engine} n={request.n}: {state_before}")
        summary: BuildSummary = build(request)
        with lock:
            stored[name] = fp
            self._save_state(stored)
        log(f"[{name}] built {summary.shards_built} shard(s), skipped {summary.shards_skipped}; "
            f"{summary.samples} samples, {summary.errors} errors in {summary.seconds:.1f}s")
        return {
            "engine": node.engine,
            "n": request.n,
            "out": request.out,
            "state_before": state_before,
            "shards_built": summary.shards_built,
            "shards_skipped": summary.shards_skipped,
            "samples_built": summary.samples,
            "errors": summary.errors,
            "errors_by_reason": summary.errors_by_reason,
            "seconds": round(summary.seconds, 3),
            "samples_per_second": round(summary.samples / summary.seconds, 2) if summary.seconds > 0 else None,
        }

    def _write_mixture(self, mixture: Mixture) -> dict[str, Any]:
        size = scaled(mixture.size, self.scale) if mixture.size else None
        path = f"{self.dag.out.rstrip('/')}/mixtures/{mixture.name}.json"
        components = {node: self.dag.node_out(node) for node in mixture.weights}
        return write_mixture(path, mixture.name, components, mixture.weights, size, mixture.seed)

    def _save_state(self, stored: dict[str, str]) -> None:
        if self.state_path:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_path.with_name(STATE_NAME + ".tmp")
            tmp.write_text(json.dumps(stored, indent=1, sort_keys=True))
            os.replace(tmp, self.state_path)

    def _write_report(self, report: dict[str, Any]) -> None:
        if "://" in self.dag.out:
            return
        path = Path(self.dag.out) / REPORT_NAME
        path.write_text(json.dumps(report, indent=1, sort_keys=True))


def format_report(report: dict[str, Any]) -> str:
    rows = [("node", "engine", "n", "before", "built", "skipped", "samples", "errors", "samples/s", "seconds")]
    for name, r in report["nodes"].items():
        rows.append((name, r["engine"], str(r["n"]), r["state_before"], str(r["shards_built"]), str(r["shards_skipped"]),
                     str(r["samples_built"]), str(r["errors"]), str(r["samples_per_second"] or "-"), f"{r['seconds']:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    for name, r in report["nodes"].items():
        if r["errors_by_reason"]:
            lines.append(f"  {name} errors: " + ", ".join(f"{k} {v}" for k, v in r["errors_by_reason"].items()))
    for name, m in report["mixtures"].items():
        lines.append(f"mixture {name}: {m['size']} samples from " + ", ".join(f"{c['node']} {c['take']}" for c in m["components"]))
    lines.append(f"total {report['seconds']:.1f}s")
    return "\n".join(lines)


def format_plan(plans: list[NodePlan]) -> str:
    rows = [("node", "engine", "n", "shards done", "state", "needs")]
    for p in plans:
        rows.append((p.node.name, p.node.engine, str(p.request.n), f"{p.shards_done}/{p.shards_planned}",
                     p.state + (f" ({p.detail})" if p.detail else ""), ", ".join(p.node.needs) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)
