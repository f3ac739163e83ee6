"""Benchmark of `got-data view`: how fast a sample opens, a page lists and thumbnails are made.

Run by hand: .venv/bin/python bench/bench_viewer.py [--n 10000] [--dir EXISTING_DATASET]
Prints, in one run: opening a sample through the viewer (HTTP, manifest offsets) vs the naive
way (scan manifests + extract from the tar by name) vs the bare read (record in hand, one
ranged read); listing load and paging; thumbnails with 1 vs 2 concurrent clients; peak memory.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import statistics
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers import build_dataset, samples  # noqa: E402

from got_data.viewer.server import ViewerConfig, serve_in_thread  # noqa: E402
from manifests.shard import read_image, shard_names  # noqa: E402
from manifests.storage import Storage  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def get(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path)
    res = conn.getresponse()
    data = res.read()
    conn.close()
    assert res.status == 200, (path, res.status, data[:200])
    return data


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def naive_open(folder: Path, key: str) -> bytes:
    """What a script without offsets does: scan every manifest, then let tarfile find the member."""
    for manifest in sorted(folder.glob("shard-*.jsonl")):
        if manifest.name.endswith(".errors.jsonl"):
            continue
        for line in manifest.read_text().splitlines():
            record = json.loads(line)
            if record["key"] == key:
                with tarfile.open(folder / shard_names(record["shard"])["tar"]) as tar:
                    return tar.extractfile(record["images"][0]["name"]).read()
    raise KeyError(key)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dir", default=None, help="an existing dataset folder (skips the build)")
    args = parser.parse_args()
    if args.dir:
        folder = Path(args.dir)
    else:
        folder = Path(tempfile.mkdtemp(prefix="bench-view-")) / "toy"
        start = time.perf_counter()
        build_dataset("test_viewer:ViewerToy", folder, n=args.n, shard_size=1000, params={"size": 200})
        print(f"built {args.n} positions in {time.perf_counter() - start:.1f}s -> {folder}")
    records = samples(folder)
    storage = Storage(str(folder))
    import numpy as np

    rng = np.random.default_rng(0)
    picks = [records[int(i)] for i in rng.choice(len(records), 40, replace=False)]
    rss0 = rss_mb()
    server, _ = serve_in_thread(ViewerConfig(str(folder), port=0))
    port = server.server_address[1]
    ds = folder.name

    def api_open(record: dict) -> None:
        get(port, f"/api/sample?ds={ds}&key={record['key']}")
        get(port, f"/api/image?ds={ds}&key={record['key']}")

    cold = [timed(api_open, r) for r in picks[:20]]
    bare = [timed(read_image, storage, r) for r in picks]
    naive = [timed(naive_open, folder, r["key"]) for r in picks[:5]]
    listing = timed(get, port, f"/api/list?ds={ds}&limit=60")
    rss_listing = rss_mb()
    warm = [timed(api_open, r) for r in picks[20:]]
    pages = [timed(get, port, f"/api/list?ds={ds}&order=random&seed=1&offset={o}&limit=60") for o in range(0, 6000, 600)]
    search = [timed(get, port, f"/api/list?ds={ds}&q=abc{i}&limit=60") for i in range(5)]
    overview = timed(get, port, f"/api/overview?ds={ds}")

    def thumbs(keys: list[str], clients: int) -> float:
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda k: get(port, f"/api/thumb?ds={ds}&key={k}"), keys))
        return len(keys) / (time.perf_counter() - start)

    keys = [r["key"] for r in records]
    one = thumbs(keys[:300], 1)
    two = thumbs(keys[300:600], 2)
    cached = thumbs(keys[:300], 2)
    server.shutdown()
    server.server_close()

    ms = lambda xs: f"{statistics.median(xs) * 1000:7.2f} ms"  # noqa: E731
    print(f"\ndataset: {len(records)} samples, {len(list(folder.glob('shard-*.tar')))} shards")
    print("open one sample (record + full image), median:")
    print(f"  viewer over HTTP, listing not loaded  {ms(cold)}")
    print(f"  viewer over HTTP, listing loaded      {ms(warm)}")
    print(f"  naive (scan manifests + tarfile)      {ms(naive)}   x{statistics.median(naive) / statistics.median(cold):.0f} slower")
    print(f"  bare ranged read (record in hand)     {ms(bare)}")
    print(f"listing: first load {listing:.2f}s; random page of 60 {ms(pages)}; text search {ms(search)}; overview plots {overview:.2f}s")
    print(f"thumbnails: 1 client {one:.0f}/s, 2 clients {two:.0f}/s (x{two / one:.2f}), cached {cached:.0f}/s")
    print(f"peak RSS: {rss0:.0f} MB before serving, {rss_listing:.0f} MB after the listing, {rss_mb():.0f} MB at the end")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
