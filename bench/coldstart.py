"""Cold start and memory, measured on real child processes.

* :func:`cold_start`: a real ``cutq worker`` process against the local GCS + Pub/Sub servers,
  with one job already waiting: process start → "ready" log line (imports, model load,
  warm-up) and → the first event (its Pub/Sub publish time).
* :func:`memory`: ``python -m bench.coldstart probe`` runs ``cutq run``'s code on given files
  in a fresh process and reports its peak RSS (and CUDA peak): against the input's pixel
  count (up to 100 MP, ``max_pixels`` raised), the number of queued jobs, and
  ``max_in_flight``, to show memory follows the configuration, not the input count.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from PIL import Image, ImageDraw

from bench import harness
from bench.throughput import Settings

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"ready in ([0-9.]+)s")


def random_checkpoint(directory: Path, mode: str) -> Path:
    """InSPyReNet with random weights saved as a state dict (no real checkpoint here)."""
    import torch

    from cutq.worker.models.inspyrenet import InSPyReNet

    path = directory / f"ckpt_{mode}_random.pth"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        model = InSPyReNet(None, mode=mode, random_init=True)  # type: ignore[arg-type]
        model.setup(torch.device("cpu"))
        torch.save(model.net.state_dict(), path)
    return path


def _worker_once(settings: Settings, cloud, image_uri: str) -> dict:  # type: ignore[no-untyped-def]
    from google.pubsub_v1 import types as gapic

    from cutq.core.contract import Options
    from tests.support.cloud import worker_process

    # Random weights loaded from a file fail warm-up's "finds the subject" check by design,
    # so such a worker starts without warm-up; its first event then includes the first
    # forward pass. A real checkpoint warms up as in production.
    warmup = not settings.random_weights
    config = cloud.worker_config(
        **{
            k: v
            for k, v in settings.config(warmup=warmup).__dict__.items()
            if v is not None and k not in ("output", "storage_attempts", "grace_period_s")
        }
    )
    events_sub = cloud.emulator.subscription_path("cold-events")
    cloud.subscriber.create_subscription(name=events_sub, topic=cloud.events_topic)
    cloud.publish_jobs([image_uri], options=Options(resize=settings.resize))  # type: ignore[arg-type]
    lines: list[tuple[float, str]] = []
    started_wall, started = time.time(), time.monotonic()
    process = worker_process(config)

    def read() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            lines.append((time.monotonic(), raw.decode(errors="replace")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    first_event_s = None
    deadline = started + 600
    try:
        while first_event_s is None and time.monotonic() < deadline and process.poll() is None:
            response = cloud.subscriber.pull(
                request=gapic.PullRequest(subscription=events_sub, max_messages=10), timeout=10
            )
            for received in response.received_messages:
                published = received.message.publish_time.timestamp()
                first_event_s = round(published - started_wall, 3)
    finally:
        process.terminate()
        process.wait(60)
        reader.join(10)
    ready = next(((t, m) for t, m in lines if READY.search(m)), None)
    if ready is None or first_event_s is None:
        tail = "".join(m for _, m in lines[-20:])
        raise RuntimeError(f"cutq worker did not become ready or emit an event:\n{tail}")
    in_process = float(READY.search(ready[1]).group(1))  # type: ignore[union-attr]
    ready_s = ready[0] - started
    return {
        "start_to_ready_s": round(ready_s, 3),
        "imports_and_startup_s": round(ready_s - in_process, 3),
        "load_and_warmup_s": round(in_process, 3),
        "start_to_first_event_s": first_event_s,
        "warmup": warmup,
    }


def cold_start(settings: Settings, work: Path) -> dict:
    """Start → ready and start → first event of real ``cutq worker`` processes."""
    from bench.servers import local_cloud
    from cutq.core.storage import open_storage

    repeats = 1 if settings.quick else 2
    runs = []
    with local_cloud() as cloud:
        for index in range(repeats):
            uri = f"gs://{cloud.bucket}/cold/{index}.jpg"  # type: ignore[attr-defined]
            data = harness.jpeg_bytes(index, settings.width, settings.height)
            open_storage(uri).write(uri, data, content_type="image/jpeg")
            runs.append(_worker_once(settings, cloud, uri))
    note = None
    if settings.model == "inspyrenet":
        note = "random-weight checkpoint (no real one here); started without warm-up"
    return {"runs": runs, "note": note}


def big_image(path: Path, megapixels: float) -> Path:
    """A cheap large PNG: a flat backdrop with a bright ellipse (compresses to almost nothing)."""
    side = int((megapixels * 1e6) ** 0.5)
    width, height = side + side // 3, max(1, int(megapixels * 1e6 / (side + side // 3)))
    image = Image.new("RGB", (width, height), (40, 60, 90))
    ImageDraw.Draw(image).ellipse(
        (width * 0.25, height * 0.2, width * 0.75, height * 0.8), fill=(230, 190, 70)
    )
    image.save(path, format="PNG", compress_level=1)
    return path


def _probe(settings: Settings, files: list[Path], out: Path, **changes: object) -> dict:
    config = settings.config(max_pixels=120_000_000, **changes)
    listing = out.with_suffix(".files")
    listing.write_text("\n".join(str(f) for f in files))
    command = [sys.executable, "-m", "bench.coldstart", "probe", str(listing), str(out)]
    settings_only = {k: v for k, v in config.__dict__.items() if k != "platform"}  # detected
    env = dict(os.environ, CUTQ_BENCH_CONFIG=json.dumps(settings_only))
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory(settings: Settings, work: Path) -> dict:
    """Peak RSS vs pixels, vs queued jobs and vs max_in_flight (each in a fresh process)."""
    work.mkdir(parents=True, exist_ok=True)
    sizes = (0.3, 2.0) if settings.quick else (0.3, 4.0, 12.0, 25.0, 50.0, 100.0)
    by_size = []
    for megapixels in sizes:
        path = big_image(work / f"mp-{megapixels}.png", megapixels)
        row = _probe(settings, [path], work / f"out-mp-{megapixels}")
        by_size.append({"megapixels": megapixels, **row})
        path.unlink()
    base = harness.make_images(work / "small", 4, 320, 240)
    counts = (8, 64) if settings.quick else (50, 200, 800)
    small = settings.__class__(**{**settings.__dict__, "resize": "dynamic", "max_side": 64})
    by_count = []
    for count in counts:
        folder = work / f"queue-{count}"
        folder.mkdir()
        files = [folder / f"{i:05d}.jpg" for i in range(count)]
        for index, path in enumerate(files):
            os.link(base[index % len(base)], path)
        row = _probe(small, files, work / f"out-q-{count}", max_in_flight=16, max_batch=8)
        by_count.append({"queued_jobs": count, "max_in_flight": 16, **row})
    by_in_flight = []
    megapixels, count = (1.0, 16) if settings.quick else (3.0, 32)
    folder = work / "inflight"
    folder.mkdir()
    source = big_image(folder / "src.png", megapixels)
    files = [folder / f"{i:03d}.png" for i in range(count)]
    for path in files:
        os.link(source, path)
    for slots in (8, 32) if not settings.quick else (8, 16):
        row = _probe(small, files, work / f"out-f-{slots}", max_in_flight=slots, max_batch=8)
        by_in_flight.append({"max_in_flight": slots, "megapixels": megapixels, **row})
    return {"by_input_size": by_size, "by_queue_length": by_count, "by_max_in_flight": by_in_flight}


def probe_main(listing: Path, out: Path) -> int:
    """Child side of :func:`_probe`: run the files, print peak memory as JSON."""
    logging_off()
    from cutq.worker.config import WorkerConfig
    from cutq.worker.local_run import run_local

    raw = json.loads(os.environ["CUTQ_BENCH_CONFIG"])
    from cutq.worker.runtime.hardware import Platform

    config = WorkerConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()},
        platform=Platform.detect(),
    )
    files = listing.read_text().splitlines()
    baseline = current_rss_mb()
    peak = [baseline]
    stop = threading.Event()

    # Sampled, not ru_maxrss: on Linux that keeps the high-water mark of the process this one
    # was forked from (the benchmark, gigabytes), so it would not describe this run at all.
    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], current_rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    summary = run_local(files, out, config, progress=False)
    stop.set()
    sampler.join()
    result: dict[str, object] = {
        "rss_before_mb": round(baseline, 1),
        "peak_rss_mb": round(max(peak[0], current_rss_mb()), 1),
        "peak_over_before_mb": round(peak[0] - baseline, 1),
        "completed": summary.completed,
        "failed": summary.failed,
        "seconds": round(time.monotonic() - started, 2),
    }
    if "torch" in sys.modules:  # a CPU worker on onnxruntime never imports it
        import torch

    if "torch" in sys.modules and torch.cuda.is_available():
        result["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(result))
    return 0


def current_rss_mb() -> float:
    """This process's resident set now, from /proc (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def logging_off() -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if len(sys.argv) == 4 and sys.argv[1] == "probe":
        sys.exit(probe_main(Path(sys.argv[2]), Path(sys.argv[3])))
    sys.exit("usage: python -m bench.coldstart probe FILES_LIST OUT_DIR")
