"""Lanes under a bulk backlog: does an interactive job still get through in about one batch?

One worker on the CPU (the defaults: u2netp on onnxruntime, two model streams, one image per
batch, 8 jobs in flight) against Google's Pub/Sub emulator and the local GCS server, in four
rows, each on fresh topics and subscriptions:

* ``bulk alone``: ``--bulk`` jobs published to the bulk lane, then the worker drains them
  for ``--window-s`` seconds; its rate is the capacity the interactive rate is set from;
* ``interactive, idle worker``: interactive jobs at ``--interactive-load`` × that capacity,
  evenly spaced, nothing else;
* ``two lanes``: the same bulk backlog draining and the same interactive arrivals, one worker
  pulling both lanes' subscriptions (the goal: interactive p95 within 2× the idle worker's,
  bulk throughput at least 0.85× bulk alone);
* ``one lane (before lanes)``: the baseline, as cutq was before: the same backlog and arrivals
  on one topic and one subscription, no lane attribute (served in arrival order).

Latency is end to end: from just before the interactive job's publish to its event being
published by the worker (both clocks in this process). Throughput counts bulk events during
the window. An interactive job not done when its row ends counts at its age then (a lower
bound; ``interactive_done`` says how many finished).

    python -m bench.lanes --bulk 2000 --window-s 150 --out bench/reports/<dir>/lanes.json
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support holds the local servers

from bench.harness import RecordingSink, jpeg_bytes, percentile, publish  # noqa: E402
from cutq.core.contract import OutputSpec, new_job  # noqa: E402
from cutq.core.lanes import Lane, lane_attributes  # noqa: E402
from cutq.core.storage import open_storage  # noqa: E402
from cutq.worker.config import WorkerConfig  # noqa: E402
from cutq.worker.runtime.inference import Runner  # noqa: E402

log = logging.getLogger("bench.lanes")
DISTINCT_IMAGES = 16  # bytes cycled over the inputs (each job still has its own input URI)


@dataclass
class Row:
    """What one row measured."""

    name: str
    window_s: float
    bulk_done: int = 0
    interactive_ms: list[float] = field(default_factory=list)
    interactive_sent: int = 0
    interactive_done: int = 0
    stages_ms: dict[str, float] = field(default_factory=dict)  # interactive jobs' medians

    def report(self) -> dict[str, object]:
        lat = self.interactive_ms
        row: dict[str, object] = {"row": self.name, "window_s": round(self.window_s, 1)}
        if self.bulk_done:
            row["bulk_jobs_done"] = self.bulk_done
            row["bulk_images_per_s"] = round(self.bulk_done / self.window_s, 3)
        if self.interactive_sent:
            row["interactive_sent"] = self.interactive_sent
            row["interactive_done"] = self.interactive_done
            row["interactive_ms"] = {f"p{q}": round(percentile(lat, q), 1) for q in (50, 95)}
            row["interactive_ms"]["max"] = round(max(lat), 1)  # type: ignore[index]
            row["interactive_stage_p50_ms"] = self.stages_ms
        return row


class Bench:
    """A warmed-up runner, a bucket of inputs and the emulator; :meth:`row` runs one row."""

    def __init__(self, runner: Runner, config: WorkerConfig, emulator, bucket: str) -> None:  # type: ignore[no-untyped-def]
        from google.cloud import pubsub_v1

        self.runner, self.config, self.emulator, self.bucket = runner, config, emulator, bucket
        self.publisher = pubsub_v1.PublisherClient()
        self.subscriber = pubsub_v1.SubscriberClient()
        self.images = [jpeg_bytes(seed, 640, 480) for seed in range(DISTINCT_IMAGES)]
        self.storage = open_storage(f"gs://{bucket}")
        self._uploaded = 0

    def inputs(self, count: int) -> list[str]:
        """``count`` new input objects (unique names: each is a new job)."""
        uris = []
        for _ in range(count):
            index = self._uploaded
            self._uploaded += 1
            uri = f"gs://{self.bucket}/in/{index:06d}.jpg"
            self.storage.write(uri, self.images[index % DISTINCT_IMAGES], content_type="image/jpeg")
            uris.append(uri)
        return uris

    def _topic(self, name: str) -> tuple[str, str]:
        topic, sub = self.emulator.topic_path(name), self.emulator.subscription_path(name)
        self.publisher.create_topic(name=topic)
        self.subscriber.create_subscription(name=sub, topic=topic, ack_deadline_seconds=60)
        return topic, sub

    def row(
        self,
        name: str,
        *,
        bulk: int,
        interactive_rate: float,
        window_s: float,
        lanes: bool,
    ) -> Row:
        from cutq.worker.service import Service
        from cutq.worker.sinks import PubSubEventSink
        from cutq.worker.sources.pubsub import PubSubSource

        output = OutputSpec(uri=f"gs://{self.bucket}/out-{uuid.uuid4().hex[:6]}")
        jobs_topic, jobs_sub = self._topic("jobs")
        bulk_topic, bulk_sub = self._topic("bulk") if lanes else (jobs_topic, None)
        events_topic, _ = self._topic("events")
        bulk_jobs = [new_job(uri, output) for uri in self.inputs(bulk)]
        count = int(interactive_rate * window_s) if interactive_rate else 0
        urgent_jobs = [new_job(uri, output) for uri in self.inputs(count)]
        bulk_attrs = lane_attributes(Lane.BULK) if lanes else {}
        futures = [
            self.publisher.publish(bulk_topic, job.to_message(), **bulk_attrs) for job in bulk_jobs
        ]
        for future in futures:
            future.result(timeout=120)
        config = self.config.replace(
            output=output.uri,
            subscription=jobs_sub,
            bulk_subscription=bulk_sub,
            interactive_reserve=None,  # the default for the shape (lanes or not)
            grace_period_s=5.0,
        )
        sink = RecordingSink(PubSubEventSink(events_topic))
        service = Service(config, self.runner, sink, ready_s=0)
        service.pipeline.start()
        started = time.monotonic()
        thread = threading.Thread(
            target=service.run,
            args=(PubSubSource.from_config(config),),
            kwargs={"handle_signals": False},
        )
        thread.start()
        sent: dict[str, float] = {}
        urgent_attrs = lane_attributes(Lane.INTERACTIVE) if lanes else {}
        for index, job in enumerate(urgent_jobs):  # evenly spaced, from 1 s in
            delay = started + 1.0 + index / interactive_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent[job.job_id] = time.monotonic()
            self.publisher.publish(jobs_topic, job.to_message(), **urgent_attrs).result(60)
        ended = started + window_s
        if time.monotonic() < ended:
            time.sleep(ended - time.monotonic())
        # The last interactive jobs may finish after the window: wait a little for them.
        settle_by = time.monotonic() + 30
        while time.monotonic() < settle_by and not all(j in sink.done_at for j in sent):
            time.sleep(0.05)
        stopped = time.monotonic()
        service.stop()
        thread.join(60)
        bulk_ids = {job.job_id for job in bulk_jobs}
        result = Row(name, window_s)
        result.bulk_done = sum(1 for j, t in sink.done_at.items() if j in bulk_ids and t <= ended)
        result.interactive_sent = len(sent)
        result.interactive_done = sum(1 for j in sent if j in sink.done_at)
        result.interactive_ms = [
            (sink.done_at.get(j, stopped) - t) * 1000.0 for j, t in sent.items()
        ]
        timings = [sink.timings_ms[j] for j in sent if j in sink.timings_ms]
        stages = sorted({stage for t in timings for stage in t})
        result.stages_ms = {
            s: round(percentile([t[s] for t in timings if s in t], 50), 1) for s in stages
        }
        for topic in {jobs_topic, bulk_topic, events_topic}:
            with contextlib.suppress(Exception):
                self.publisher.delete_topic(topic=topic)
        log.warning("%s: %s", name, result.report())
        return result

    def close(self) -> None:
        self.publisher.stop()
        self.subscriber.close()


def label(row: dict) -> str:
    return row["row"].replace(" (", "\n(").replace(", ", ",\n") + f"\n#{row.get('round', 1)}"


def write_plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    latency = [r for r in rows if "interactive_ms" in r]
    names = [label(r) for r in latency]
    xs = range(len(latency))
    left.bar([x - 0.2 for x in xs], [r["interactive_ms"]["p50"] for r in latency], 0.4, label="p50")
    left.bar([x + 0.2 for x in xs], [r["interactive_ms"]["p95"] for r in latency], 0.4, label="p95")
    idle = next((r for r in rows if r["row"].startswith("interactive")), None)
    if idle is not None:
        left.axhline(
            2 * idle["interactive_ms"]["p95"], color="grey", ls="--", label="goal: 2× idle p95"
        )
    left.set_yscale("log")
    left.set_xticks(list(xs), names, fontsize=8)
    left.set_ylabel("interactive job: publish → event (ms, log)")
    left.legend(fontsize=8)
    throughput = [r for r in rows if "bulk_images_per_s" in r]
    right.bar([label(r) for r in throughput], [r["bulk_images_per_s"] for r in throughput])
    alone = next((r for r in rows if r["row"] == "bulk alone"), None)
    if alone is not None:
        right.axhline(
            0.85 * alone["bulk_images_per_s"], color="grey", ls="--", label="goal: 0.85× alone"
        )
        right.legend(fontsize=8)
    right.set_ylabel("bulk images/s during the window")
    right.tick_params(axis="x", labelsize=8)
    figure.suptitle(f"cutq lanes, one CPU worker, {report['settings']['bulk']} bulk jobs waiting")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


ROWS = ("bulk alone", "interactive, idle worker", "two lanes", "one lane (before lanes)")
ROW_SHAPES = {  # name: (a bulk backlog, interactive arrivals, two lanes)
    "bulk alone": (True, False, True),
    "interactive, idle worker": (False, True, True),
    "two lanes": (True, True, True),
    "one lane (before lanes)": (True, True, False),
}


def goals(rows: dict[str, Row]) -> dict[str, float]:
    """One round's ratios: interactive p95 against the idle worker's, bulk against alone."""
    reports = {name: row.report() for name, row in rows.items()}
    idle = reports["interactive, idle worker"]["interactive_ms"]["p95"]  # type: ignore[index]
    alone = reports["bulk alone"]["bulk_images_per_s"]

    def p95(name: str) -> float:
        return reports[name]["interactive_ms"]["p95"]  # type: ignore[index,no-any-return]

    return {
        "two_lanes_p95_over_idle_p95": round(p95("two lanes") / idle, 2),
        "two_lanes_bulk_over_alone": round(reports["two lanes"]["bulk_images_per_s"] / alone, 3),  # type: ignore[operator]
        "one_lane_p95_over_idle_p95": round(p95("one lane (before lanes)") / idle, 2),
        "one_lane_bulk_over_alone": round(
            reports["one lane (before lanes)"]["bulk_images_per_s"] / alone,
            3,  # type: ignore[operator]
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bulk", type=int, default=2000, help="bulk backlog per row")
    parser.add_argument("--window-s", type=float, default=150.0)
    parser.add_argument("--interactive-load", type=float, default=0.10)
    parser.add_argument("--rounds", type=int, default=1, help="rows repeated, order alternating")
    parser.add_argument("--out", help="also write the JSON here (and the plot beside it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from cutq.worker.service import _warmed_up_runner
    from tests.support.emulators import GoogleEmulator, PubSubEmulator
    from tests.support.servers import local_gcs

    config = WorkerConfig(device="cpu")
    runner = _warmed_up_runner(config, None)
    with local_gcs(), GoogleEmulator() as google:
        os.environ["PUBSUB_EMULATOR_HOST"] = google.host
        bucket = f"lanes-{uuid.uuid4().hex[:8]}"
        open_storage(f"gs://{bucket}").client.create_bucket(bucket)  # type: ignore[attr-defined]
        bench = Bench(runner, config, PubSubEmulator(google.host, "cutq-lanes", None), bucket)
        try:
            window = args.window_s
            rounds: list[dict[str, Row]] = []
            rate = 0.0
            for number in range(args.rounds):
                # Alternate the order round by round: a machine that gets busier or quieter
                # during the run then weighs on every row alike.
                order = ROWS if number % 2 == 0 else ROWS[::-1]
                if number == 0:  # the capacity the interactive rate is set from comes first
                    order = ("bulk alone", *(row for row in order if row != "bulk alone"))
                done: dict[str, Row] = {}
                for name in order:
                    bulk, interactive, lanes = ROW_SHAPES[name]
                    done[name] = bench.row(
                        name,
                        bulk=args.bulk if bulk else 0,
                        interactive_rate=rate if interactive else 0.0,
                        window_s=window,
                        lanes=lanes,
                    )
                    if name == "bulk alone" and number == 0:
                        rate = args.interactive_load * done[name].bulk_done / window
                rounds.append(done)
        finally:
            bench.close()
    ratios = [goals(done) for done in rounds]
    report = {
        "settings": {
            "bulk": args.bulk,
            "window_s": window,
            "rounds": args.rounds,
            "interactive_load": args.interactive_load,
            "interactive_per_s": round(rate, 3),
            "worker": {
                "model": runner.model.name,
                "engine": runner.model.engine,
                "streams": runner.model.streams,
                "max_batch": config.max_batch,
                "max_in_flight": config.max_in_flight,
                "interactive_reserve": config.replace(  # what the rows' workers resolved
                    subscription="s", bulk_subscription="b", interactive_reserve=None
                ).interactive_reserve,
            },
            "cpu_cores": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "rows": [
            done[name].report() | {"round": i + 1} for i, done in enumerate(rounds) for name in ROWS
        ],
        "goals_per_round": ratios,
        "goals": {key: round(statistics.median(r[key] for r in ratios), 3) for key in ratios[0]},
    }
    publish(report, args.out)
    if args.out:
        write_plot(report, Path(args.out).with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
