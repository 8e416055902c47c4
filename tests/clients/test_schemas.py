"""The schemas themselves (docs/protocol/*.schema.json): valid draft
2020-12, one per message kind of docs/protocol.md, every $ref resolving,
and the rules the text states that a shape can carry (a Result has a
result or an error, never both; deferred and rejected replies carry a
reason; a spawn cannot name a parent; trace ids not all zeros)."""
import os
import re
import unittest

import jsonschema

from agentscaler import protocol as P
from agentscaler.peer import reply, result_message, task_body

from tests.clients import schemas
from tests.clients.schemas import errors

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
NOW = "2026-12-06T16:40:01.250Z"


class SchemaTest(unittest.TestCase):
    def test_valid_draft_2020_12_and_named_in_the_spec(self):
        with open(os.path.join(schemas.DIR, "..", "protocol.md")) as f:
            spec = f.read()
        for name, s in schemas.SCHEMAS.items():
            jsonschema.Draft202012Validator.check_schema(s)
            self.assertEqual(s["$schema"], "https://json-schema.org/draft/2020-12/schema")
            self.assertIn("`%s.schema.json`" % name, spec, "docs/protocol.md names it")
        self.assertEqual(set(schemas.BY_KIND.values()) - set(schemas.SCHEMAS), set())
        for kind in schemas.BY_KIND:
            if kind != "Result":
                self.assertEqual(schemas.SCHEMAS[schemas.BY_KIND[kind]]["properties"]["kind"],
                                 {"const": kind})

    def test_every_ref_resolves(self):
        def refs(o):
            if isinstance(o, dict):
                for k, v in o.items():
                    if k == "$ref":
                        yield v
                    else:
                        yield from refs(v)
            elif isinstance(o, list):
                for v in o:
                    yield from refs(v)
        for name, s in schemas.SCHEMAS.items():
            resolver = schemas.REGISTRY.resolver(base_uri=s["$id"])
            for r in refs(s):
                resolver.lookup(r)      # raises when it does not resolve

    def test_task_message(self):
        ok = [{"id": "a"}, {"id": "x" * 253, "parent": None, "payload": None},
              {"id": "a", "parent": "b", "traceparent": TP, "deadline": NOW,
               "resources": {"cpu": "1.5", "memory": "2Gi", "nvidia.com/gpu": 1}, "extra": 1}]
        bad = [{}, {"id": ""}, {"id": "a b"}, {"id": "x" * 254}, {"id": 5}, {"id": "é"},
               {"id": "a", "traceparent": TP.upper()},
               {"id": "a", "traceparent": TP[:36] + "0" * 16 + TP[52:]},
               {"id": "a", "deadline": "2026-12-06"},
               {"id": "a", "deadline": "2026-12-06T16:40:01.1234567890Z"},
               {"id": "a", "resources": {"cpu": -1}}, {"id": "a", "resources": {"cpu": "x"}}]
        for m in ok:
            self.assertEqual(errors("task-message", m), [], m)
        for m in bad:
            self.assertTrue(errors("task-message", m), m)

    def test_result_has_result_or_error(self):
        r = result_message("t", "completed", value=None, finished_at=NOW)
        self.assertEqual(errors("result", r), [], "a null result is a result")
        r2 = dict(r, error={"reason": "x", "message": "", "retryable": False})
        self.assertTrue(errors("result", r2))
        f = result_message("t", "failed", error={"reason": "runtime.lost", "message": "",
                                                 "retryable": True})
        self.assertEqual(errors("result", f), [])
        self.assertTrue(errors("result", dict(f, result=1)))
        self.assertTrue(errors("result", dict(f, error={"reason": "no spaces allowed",
                                                        "message": "", "retryable": False})))

    def test_replies(self):
        self.assertEqual(errors("reply", reply("1", "admitted", "p/1")), [])
        self.assertTrue(errors("reply", reply("1", "rejected", "p/1")), "needs a reason")
        self.assertTrue(errors("reply", reply("1", "deferred", "p/1")), "needs a reason")
        self.assertTrue(errors("reply", reply("1", "result", "p/1")), "needs the Result")
        self.assertTrue(errors("reply", reply("bad key", "admitted", "p/1")))
        res = result_message("p/1", "completed", value=2)
        self.assertEqual(errors("reply", reply("1", "result", "p/1", result=res)), [])
        self.assertTrue(errors("reply", reply("1", "admitted", "p/1", result=res)))

    def test_events(self):
        ok = [{"seq": 1, "type": "started", "time": NOW, "attempt": 1},
              {"seq": 2, "type": "progress", "time": NOW},
              {"seq": 3, "type": "spawn", "time": NOW, "key": "k",
               "task": {"payload": None, "traceparent": TP}},
              {"seq": 4, "type": "completed", "time": NOW, "result": None},
              {"seq": 5, "type": "failed", "time": NOW,
               "error": {"reason": "a.b", "message": "m", "retryable": False}}]
        bad = [{"seq": 0, "type": "started", "time": NOW, "attempt": 1},
               {"seq": 1, "type": "finished", "time": NOW},
               {"seq": 2, "type": "progress", "time": NOW, "fraction": 1.5},
               {"seq": 3, "type": "spawn", "time": NOW, "key": "k",
                "task": {"payload": 1, "parent": "forged"}},
               {"seq": 3, "type": "spawn", "time": NOW, "key": "k", "task": {"payload": 1,
                                                                             "id": "x"}},
               {"seq": 4, "type": "completed", "time": NOW}]
        for e in ok:
            self.assertEqual(errors("event", e), [], e)
        for e in bad:
            self.assertTrue(errors("event", e), e)

    def test_task_body_and_child_ids(self):
        m = P.task_message(id="t", payload=1, traceparent=TP)
        self.assertEqual(errors("task", task_body(m, token="x" * 32)), [])
        self.assertTrue(errors("task", task_body(m, attempt=0)))
        self.assertEqual(P.child_id("t", "k"), "t/k")
        long_id = "p" * 250
        c = P.child_id(long_id, "key")
        self.assertEqual(len(c), 253)
        self.assertTrue(re.match(r"^p{220}/#[0-9a-f]{31}$", c))
        self.assertNotEqual(c, P.child_id(long_id, "key2"))
        self.assertEqual(errors("task-message", {"id": c}), [])


if __name__ == "__main__":
    unittest.main()
