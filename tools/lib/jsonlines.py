"""Following a file of JSON lines as it grows (an agent runtime's log, the
API server's audit log), standard library only."""
import json


class Tail:
    """The complete JSON lines appended to a file since the last call."""

    def __init__(self, path):
        self.path, self.off, self.rest = path, 0, b""

    def read(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except FileNotFoundError:
            return []
        self.off += len(data)
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        return [json.loads(ln) for ln in lines if ln.strip()]
