"""The upload function's routes ask for presets, renditions, a ref and result names; a route
that cannot work is refused when the function starts, naming the route."""

from __future__ import annotations

import json

import pytest

from cutq.core.errors import ConfigError
from cutq.submitter.function import FunctionConfig

TOPIC = "projects/p/topics/jobs"


def config(*routes: dict) -> FunctionConfig:
    env = {"CUTQ_JOBS_TOPIC": TOPIC, "CUTQ_FUNCTION_ROUTES": json.dumps(list(routes))}
    return FunctionConfig.from_env(env)


def route(**keys: object) -> dict:
    return {"prefix": "shop/", "output": "gs://results/shop", **keys}


def test_presets_come_before_the_routes_own_renditions() -> None:
    own = {"name": "mask", "kind": "mask"}
    (parsed,) = config(route(presets=["thumbnail"], renditions=[own])).routes
    assert [(r.name, r.preset, r.kind) for r in parsed.renditions] == [
        ("thumbnail", "thumbnail", "cutout"),
        ("mask", None, "mask"),
    ]


@pytest.mark.parametrize(
    ("ref", "name", "expected"),
    [
        ("{parent}", "SKU-1/front.jpg", "SKU-1"),
        ("{parent}", "front.jpg", "shop"),
        ("{stem}", "SKU-1/front.jpg", "front"),
        ("re:^([A-Z]+-[0-9]+)_", "AB-12_side.jpg", "AB-12"),
        ("re:^([A-Z]+-[0-9]+)_", "side.jpg", None),  # no match: no ref, still a job
        ("shop-upload", "x/y.jpg", "shop-upload"),
    ],
)
def test_the_ref_comes_from_the_objects_name(ref, name, expected) -> None:
    (parsed,) = config(route(ref=ref)).routes
    request = parsed.request("uploads", f"shop/{name}")
    assert (request.ref, request.name) == (expected, name)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"presets": ["amazon-main"], "format": "webp"}, r"drop \['format'\]"),
        ({"presets": ["no-such"]}, "unknown preset 'no-such'"),
        ({"presets": "amazon-main"}, "expected a list of preset names"),
        ({"renditions": {"name": "x"}}, "expected a list of rendition objects"),
        ({"ref": "re:(a)(b)"}, "has 2 groups"),
        ({"ref": "{sku}"}, r"unknown placeholder \{sku\}"),
        ({"template": "{stem}.{ext}"}, r"must contain \{job_id\} or \{hash\}"),
    ],
)
def test_a_route_that_cannot_work_is_refused_naming_it(keys, message) -> None:
    with pytest.raises(ConfigError, match=r"CUTQ_FUNCTION_ROUTES\[1\]: .*" + message):
        config(route(), route(**keys))
