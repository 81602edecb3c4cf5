"""The URL target's own cost per request: CPU and wall time of `UrlTarget.invoke` against a raw
asyncio server answering a small JSON body at once (the load client's hot path, for an answer
that is no stream: what every non-LLM run pays per request).

Run: python benchmarks/client_cost.py [--requests 4000] [--blocks 7]
Meant for before/after: python benchmarks/ab.py REV --rounds 3 -- benchmarks/client_cost.py
Printed: the median and the best of `blocks` blocks of `requests` sequential requests on one
keep-alive connection, in µs per request (CPU: this process only, `time.process_time`).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

SERVER = r'''
import asyncio
BODY = b'{"ok": true, "result": [1, 2, 3]}'
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-fcbench-instance-id: i-1\r\n"
          b"x-fcbench-inference-ms: 0.1\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY

class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf = transport, b""

    def data_received(self, data):
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in self.buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            self.transport.write(ANSWER)

async def main():
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=4000, help="per block")
    ap.add_argument("--blocks", type=int, default=7)
    args = ap.parse_args()
    from fcbench.targets.url import UrlTarget

    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        target = UrlTarget(f"http://127.0.0.1:{port}/invoke")
        body = b'{"x": 1}'
        for _ in range(2000):  # warm-up
            target.invoke(body, "application/json")
        cpu, wall = [], []
        for _ in range(args.blocks):
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(args.requests):
                target.invoke(body, "application/json")
            cpu.append((time.process_time() - c0) / args.requests * 1e6)
            wall.append((time.perf_counter() - w0) / args.requests * 1e6)
        target.close()
    finally:
        proc.terminate()
        proc.wait()
    print(f"client CPU per request: median {statistics.median(cpu):.2f} us, best "
          f"{min(cpu):.2f} us")
    print(f"wall per request: median {statistics.median(wall):.2f} us, best {min(wall):.2f} us")


if __name__ == "__main__":
    main()
