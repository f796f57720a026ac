"""The worker's configuration: one frozen dataclass, read once at start-up.

Every field can be set from the environment as ``CUTQ_<FIELD>`` (``CUTQ_MAX_BATCH=16``);
command-line flags override the environment. An unknown ``CUTQ_*`` variable is an error, so
a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import logging
import types
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Union, get_args, get_origin, get_type_hints

from cutq.core.contract import FOREGROUNDS, FORMATS, KINDS, RESIZES, OutputSpec, check_output
from cutq.core.control import control_uri
from cutq.core.errors import ConfigError, InvalidJob
from cutq.worker.lane_policy import LanePolicy, default_reserve
from cutq.worker.runtime.hardware import CPU_ONLY, Platform

log = logging.getLogger(__name__)
ENGINES = ("auto", "torch", "onnxruntime")

ENV_PREFIX = "CUTQ_"
# The platform's own variables, read when the CUTQ_ name is not set: variable → field.
_PLATFORM = {
    "PORT": "push_port",  # Cloud Run tells a service its port
    "GOOGLE_CLOUD_PROJECT": "trace_project",  # Cloud Run and Cloud Functions set it
}
# Old names still read, each with a warning in the log: old name → field.
_DEPRECATED = {"CUTQ_LANES": "streams"}  # renamed when "lane" came to mean interactive/bulk
DEPRECATED_UNTIL = "0.3.0"  # the release that removes the old names (CHANGELOG.md)
# Variables that belong to the client side or to tests, not to the worker.
_NOT_WORKER = {
    "CUTQ_JOBS_TOPIC",
    "CUTQ_BULK_TOPIC",
    "CUTQ_SUBMITTER_OUTPUT",
    "CUTQ_SUBMITTER_STAGING",
    "CUTQ_FUNCTION_ROUTES",
    "CUTQ_TEST_TIMEOUT_S",
    "CUTQ_LOG_FORMAT",  # logging is the process's: the command line sets it up (cutq.cli)
    "CUTQ_LOG_LEVEL",
    "CUTQ_PUBSUB_EMULATOR",  # the tests' and `make stack`'s path to Google's Pub/Sub emulator
    "CUTQ_REQUIRE_EMULATORS",  # .ci/run: a missing emulator fails the tests instead of skipping
}


@dataclass(frozen=True)
class WorkerConfig:
    """How one worker process runs. Units are in the names."""

    model: str = "u2netp"
    checkpoint: str | None = None  # InSPyReNet weights: a path or gs:// URI
    checkpoint_sha256: str | None = None
    checkpoint_cache_dir: str | None = None  # default ~/.cache/cutq/checkpoints
    model_max_side: int | None = None  # dynamic resize: cap on the longer model-input side
    model_mode: str | None = None  # model-specific variant, e.g. inspyrenet "base" | "fast"
    model_spec: str | None = None  # a JSON model spec: serve that ONNX graph (onnx_spec.py)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # auto (the model's choice on CUDA, docs/performance.md "GPU") | fp32 | fp16 | bf16
    precision: str = "auto"
    engine: str = "auto"  # auto (u2netp on a CPU: onnxruntime) | torch | onnxruntime
    threads: int | None = None  # the model's intra-op threads on a CPU; None: one per core
    streams: int | None = None  # images in the model at once on the onnxruntime engine, each on
    #                             its own model thread, sharing those threads; None: 2 with
    #                             ≥ 2 cores (1 on torch, always). Was CUTQ_LANES (deprecated).
    resize: str = "static"  # default for jobs that do not say
    foreground: str = "auto"  # edge colours for jobs that do not say: auto | ml | none
    matting_max_pixels: int = 1_000_000  # closed-form matting runs at most at this size
    matting_timeout_s: float = 10.0  # … and gives up (keeping the mask) after this long
    max_batch: int | None = None  # None: 8 on a GPU, 1 on a CPU (batching is slower there)
    max_wait_ms: float = 20.0
    max_in_flight: int | None = None  # jobs held in memory at once, all stages together;
    #                                   None: 32 on a GPU, 8 on a CPU (at least max_batch)
    # The in-flight memory budget, in plain cut-out pixels: a plain cut-out is charged its
    # pixels, any other path what it really costs in those units (worker/memory.py: bytes per
    # pixel per path, the largest planned canvas included; docs/big-photos.md). ~3.4 GB here.
    max_in_flight_pixels: int = 200_000_000
    max_canvas_side: int = 16383  # any rendition's planned canvas: at most this side (WebP's)
    max_canvas_pixels: int = 50_000_000  # … and this area; over either: failed, too_large
    io_threads: int | None = None  # download + decode workers, as many again encode + upload;
    #                                None: 4 on a GPU, 2 on a CPU (they share its cores)
    max_input_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 50_000_000
    output: str = "file:///tmp/cutq-results"  # default output base URI
    output_format: str = "png"
    output_kind: str = "cutout"
    output_background: str | None = None  # "#rrggbb[aa]": composite cutouts onto this colour
    output_quality: int | None = None  # 1-100 for jpeg, avif and lossy webp
    events_topic: str | None = None  # projects/P/topics/T; None: events go to the log only
    control: str | None = None  # cancellation records; None: gs://<bucket>/_cutq, <output>/_cutq
    control_refresh_s: float = 2.0  # how often cancellations are listed; 0: never (no checks)
    subscription: str | None = None  # projects/P/subscriptions/S, for `cutq worker`: the
    #                                  interactive lane (or the only one)
    bulk_subscription: str | None = None  # the bulk lane's subscription, served behind it
    interactive_reserve: int | None = None  # of max_in_flight, slots bulk jobs never take;
    #      None, with a bulk subscription: a batch (max_batch), at most what leaves bulk a
    #      batch, at least 1; without one: 0
    lease_extension_s: int = 20  # leases are renewed this far ahead: a crashed worker's jobs
    #                              reappear for others within about this long
    push_audience: str | None = None  # `cutq serve`: require push OIDC tokens for this audience
    push_service_account: str | None = None  # … signed for this service account
    push_certs_url: str | None = None  # where token signing keys live (default: Google's)
    # verify: check the token's signature and claims; claims: behind Cloud Run's run.invoker
    # IAM check, which strips signatures, check the claims only; none: no in-app check.
    # None: verify when push_audience is set, else none.
    push_auth: str | None = None
    # How long a push request waits for its job. Must equal the push subscription's ack
    # deadline (Pub/Sub's HTTP timeout for push; 10-600 s); the Terraform sets both.
    push_timeout_s: float = 300.0
    push_host: str = "0.0.0.0"  # `cutq serve` listens here (--host)
    push_port: int = 8080  # … on this port (--port; Cloud Run's PORT when CUTQ_PUSH_PORT is unset)
    drain_idle_s: float | None = None  # `cutq worker`: exit 0 after this long with nothing in
    #                                    flight (--drain-idle-s; Cloud Run jobs); None: never
    trace_project: str | None = None  # the project of the traces job log lines link to;
    #                                   None: GOOGLE_CLOUD_PROJECT, else the bare trace id
    allowed_buckets: tuple[str, ...] = ()  # gs:// buckets jobs may read and write; () = any
    allowed_dirs: tuple[str, ...] = ()  # file:// roots jobs may read and write; () = any
    storage_attempts: int = 5  # tries per storage call before the job is nacked
    storage_deadline_s: float = 60.0  # … and the most time spent retrying one call
    storage_timeout_s: float = 60.0  # … and the most one request may take
    grace_period_s: float = 25.0  # SIGTERM → finish or nack everything within this
    warmup: bool = True
    # Not a setting: what start-up found (Platform.detect), so that building a config never
    # probes the hardware. The default, CPU only, is what a config built by hand assumes.
    platform: Platform = CPU_ONLY

    def __post_init__(self) -> None:
        _check(
            self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
            "device must be auto, cpu, cuda or cuda:N",
        )
        # Defaults that depend on the device, resolved once here (frozen: hence __setattr__).
        if self.max_batch is None:
            object.__setattr__(self, "max_batch", 8 if self.on_gpu else 1)
        if self.io_threads is None:
            object.__setattr__(self, "io_threads", 4 if self.on_gpu else 2)
        assert self.max_batch is not None and self.io_threads is not None
        if self.max_in_flight is None:  # a CPU does ~5 images/s: 8 jobs is 2 s of work
            default = 32 if self.on_gpu else 8
            # With two lanes, at least a batch of bulk jobs and a batch kept for interactive ones.
            batches = 2 if self.bulk_subscription else 1
            object.__setattr__(self, "max_in_flight", max(default, batches * self.max_batch))
        assert self.max_in_flight is not None
        _check(self.max_batch >= 1, "max_batch must be ≥ 1")
        _check(self.max_wait_ms >= 0, "max_wait_ms must be ≥ 0")
        _check(
            self.max_in_flight >= self.max_batch,
            f"max_in_flight ({self.max_in_flight}) must be ≥ max_batch ({self.max_batch})",
        )
        _check(self.io_threads >= 1, "io_threads must be ≥ 1")
        if self.interactive_reserve is None:  # the lane policy's default
            reserve = default_reserve(
                self.max_in_flight, self.max_batch, two_lanes=bool(self.bulk_subscription)
            )
            object.__setattr__(self, "interactive_reserve", reserve)
        try:
            LanePolicy.of(self)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        _check(
            self.bulk_subscription is None or bool(self.subscription),
            "bulk_subscription needs subscription (the interactive lane) as well",
        )
        _check(self.max_input_bytes >= 1, "max_input_bytes must be ≥ 1")
        _check(self.max_pixels >= 1, "max_pixels must be ≥ 1")
        _check(
            self.max_in_flight_pixels >= self.max_pixels,
            f"max_in_flight_pixels ({self.max_in_flight_pixels}) must be ≥ max_pixels "
            f"({self.max_pixels}): the largest allowed image must fit on its own",
        )
        _check(self.max_canvas_side >= 1, "max_canvas_side must be ≥ 1")
        _check(self.max_canvas_pixels >= 1, "max_canvas_pixels must be ≥ 1")
        _check(self.grace_period_s >= 0, "grace_period_s must be ≥ 0")
        _check(0 <= self.push_port <= 65535, "push_port must be 0-65535 (0: any free port)")
        _check(
            self.drain_idle_s is None or self.drain_idle_s >= 0,
            "drain_idle_s must be ≥ 0 (unset: never drain)",
        )
        _check(self.control_refresh_s >= 0, "control_refresh_s must be ≥ 0 (0: off)")
        _check(self.storage_attempts >= 1, "storage_attempts must be ≥ 1")
        _check(self.storage_timeout_s > 0, "storage_timeout_s must be > 0")
        _check(10 <= self.lease_extension_s <= 600, "lease_extension_s must be 10-600")
        _check(self.resize in RESIZES, f"resize must be one of {RESIZES}")
        _check(
            10 <= self.push_timeout_s <= 600,
            "push_timeout_s must be 10-600: it must equal the push subscription's ack deadline, "
            "which Pub/Sub bounds to 10-600 s",
        )
        _check(
            self.push_auth in (None, "verify", "claims", "none"),
            "push_auth must be verify, claims or none",
        )
        _check(
            self.push_auth not in ("verify", "claims") or bool(self.push_audience),
            f"push_auth={self.push_auth} needs push_audience (the push subscription's audience)",
        )
        _check(
            self.push_auth != "none" or not self.push_audience,
            "push_auth=none contradicts push_audience: unset one of them",
        )
        _check(self.output_format in FORMATS, f"output_format must be one of {FORMATS}")
        _check(self.output_kind in KINDS, f"output_kind must be one of {KINDS}")
        try:
            check_output(self.default_output)
        except InvalidJob as error:  # "output.background: …" → "output_background: …"
            raise ConfigError(str(error).replace("output.", "output_", 1)) from None
        _check(
            self.foreground in ("auto", *FOREGROUNDS),
            f"foreground must be auto or one of {FOREGROUNDS}",
        )
        _check(self.matting_max_pixels >= 1, "matting_max_pixels must be ≥ 1")
        _check(self.matting_timeout_s > 0, "matting_timeout_s must be > 0")
        _check(
            self.precision in ("auto", "fp32", "fp16", "bf16"),
            "precision must be auto, fp32, fp16 or bf16",
        )
        _check(self.engine in ENGINES, f"engine must be one of {', '.join(ENGINES)}")
        _check(self.threads is None or self.threads >= 1, "threads must be ≥ 1")
        _check(self.streams is None or self.streams >= 1, "streams must be ≥ 1")

    @property
    def on_gpu(self) -> bool:
        """Whether the model runs on a GPU (``auto``: whether the platform found at start-up
        has one that is present *and* usable by torch; a present but unusable one gets CPU
        defaults, named in a warning by :meth:`~cutq.worker.runtime.hardware.Platform.detect`)."""
        if self.device == "auto":
            return self.platform.has_gpu
        return self.device.startswith("cuda")

    @property
    def default_foreground(self) -> str:
        """Edge colours for jobs that do not say. ``auto`` is ``ml`` for a model whose alpha
        is sharp (InSPyReNet: edge-band error −64 % with an exact alpha) and ``none`` for
        u2netp, whose blurry masks gain 2 % for 11 % of a CPU worker's throughput
        (docs/product-photos.md,
        "Clean edges": the table from ``cutq eval --edges``)."""
        if self.foreground != "auto":
            return self.foreground
        return "ml" if self.model == "inspyrenet" else "none"

    @property
    def default_output(self) -> OutputSpec:
        return OutputSpec(
            uri=self.output,
            format=self.output_format,  # type: ignore[arg-type]
            kind=self.output_kind,  # type: ignore[arg-type]
            background=self.output_background,
            quality=self.output_quality,
        )

    @property
    def control_uri(self) -> str:
        """Where cancellations are recorded (:mod:`cutq.core.control`)."""
        return control_uri(self.output, self.control)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], platform: Platform = CPU_ONLY, **overrides: Any
    ) -> WorkerConfig:
        """Fields from ``CUTQ_*`` variables, then ``overrides`` (None means "not given"), on
        ``platform`` (the command line passes :meth:`Platform.detect`'s answer)."""
        known = {f.name for f in fields(cls)} - {"platform"}
        values: dict[str, Any] = {}
        for key, raw in environ.items():
            if not key.startswith(ENV_PREFIX) or key in _NOT_WORKER:
                continue
            name = _DEPRECATED.get(key) or key[len(ENV_PREFIX) :].lower()
            if key in _DEPRECATED:
                new = ENV_PREFIX + name.upper()
                if new in environ:
                    raise ConfigError(f"{key} is the deprecated name of {new}: set only {new}")
                log.warning(
                    "%s is deprecated: it is now %s (same meaning); removed in %s",
                    key,
                    new,
                    DEPRECATED_UNTIL,
                )
            if name not in known:
                raise ConfigError(
                    f"unknown setting {key}; known: "
                    + ", ".join(ENV_PREFIX + n.upper() for n in sorted(known))
                )
            values[name] = raw
        for key, name in _PLATFORM.items():
            if name not in values and environ.get(key):
                values[name] = environ[key]
        values.update({key: value for key, value in overrides.items() if value is not None})
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        hints = get_type_hints(cls)
        converted = {name: _convert(name, value, hints[name]) for name, value in values.items()}
        try:
            return cls(**converted, platform=platform)
        except (TypeError, ValueError) as error:
            raise ConfigError(str(error)) from None

    def replace(self, **changes: Any) -> WorkerConfig:
        return dataclasses.replace(self, **changes)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _convert(name: str, value: Any, hint: Any) -> Any:
    """Turn an environment string into the field's type; pass typed values through."""
    if not isinstance(value, str):
        return tuple(value) if isinstance(value, list) else value
    optional = get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)
    base = (
        next((arg for arg in get_args(hint) if arg is not type(None)), hint) if optional else hint
    )
    if optional and value.strip() == "":
        return None
    try:
        if base is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if base is int:
            return int(value.replace("_", ""))
        if base is float:
            return float(value)
        if get_origin(base) is tuple:
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value
    except ValueError:
        raise ConfigError(
            f"{ENV_PREFIX}{name.upper()}: cannot read {value!r} as "
            f"{getattr(base, '__name__', base)}"
        ) from None
