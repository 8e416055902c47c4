"""The protocol's JSON Schemas (docs/protocol/*.schema.json) as validators,
and a Peer that validates every message it sends and receives.  Needs
jsonschema (build/venv, tools/deps.sh)."""
import glob
import json
import os

import jsonschema
from referencing import Registry, Resource

from agentscaler.peer import Peer

DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "protocol")
SCHEMAS = {}
for _f in sorted(glob.glob(os.path.join(DIR, "*.schema.json"))):
    with open(_f) as _fh:
        SCHEMAS[os.path.basename(_f)[:-len(".schema.json")]] = json.load(_fh)
REGISTRY = Registry().with_resources(
    (s["$id"], Resource.from_contents(s)) for s in SCHEMAS.values())
BY_KIND = {"Task": "task", "TaskStatus": "task-status", "EventList": "event-list",
           "Reply": "reply", "ReplyAck": "reply-ack", "Error": "error", "Health": "health",
           "Result": "result"}
# How many messages of each kind were checked (the tests assert every kind was).
CHECKED = {}


def validator(name):
    return jsonschema.Draft202012Validator(
        SCHEMAS[name], registry=REGISTRY, format_checker=jsonschema.FormatChecker())


def errors(name, obj):
    return [e.message for e in validator(name).iter_errors(obj)]


def check(name, obj):
    """Raises AssertionError naming every way obj breaks the schema."""
    errs = errors(name, obj)
    if errs:
        raise AssertionError("%s: %s\n%s" % (name, "; ".join(errs[:5]),
                                             json.dumps(obj)[:2000]))
    CHECKED[name] = CHECKED.get(name, 0) + 1
    if name == "event-list":
        for ev in obj["events"]:
            CHECKED["event:" + ev["type"]] = CHECKED.get("event:" + ev["type"], 0) + 1


def check_message(obj):
    """A protocol message, by its kind."""
    check(BY_KIND[obj["kind"]], obj)


class CheckedPeer(Peer):
    """Validates each request body and each answer that comes from the
    runtime (one with the protocol's apiVersion) against its schema."""

    def request(self, method, path, body=None, timeout=None):
        if body is not None:
            check_message(body)
        code, obj = super().request(method, path, body, timeout)
        if isinstance(obj, dict) and obj.get("apiVersion") == "agentscaler.io/v1":
            check_message(obj)
            if code >= 300 and obj["kind"] != "Error":
                raise AssertionError("%d answered with a %s" % (code, obj["kind"]))
        return code, obj
