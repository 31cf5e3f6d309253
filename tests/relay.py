"""A TCP relay that delays every chunk by a fixed time: the round trip of the benchmark's RTT rows.

    python tests/relay.py --netns NAME --target PORT --delay-ms 25

This kernel has no netem qdisc, so the delay is made in user space. The relay listens on
127.0.0.1 (an ephemeral port, printed on the first line of stdout) in the namespace it was
started in, then enters network namespace NAME, where sshd listens on that namespace's own
loopback, and forwards each connection to 127.0.0.1:PORT there: sshd can only be reached through
the relay, and no traffic leaves the machine. Each chunk read from either side is written on
`delay` later, in order, without holding up the chunks behind it, so each direction adds `delay`
and a round trip adds twice that (bandwidth is not limited). It serves until killed (SIGTERM).

The event loop waits with select(2), whose timeout is in microseconds: epoll's is in whole
milliseconds (rounded up), which would add 0 to 1 ms at random to every chunk and bunch chunks
sent apart into one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import selectors
import signal
import socket
import sys
import time

CLONE_NEWNET = 0x40000000


def enter_netns(name: str) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy reader to writer, each chunk `delay` seconds after it arrived."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(256 * 1024)
            queue.put_nowait((time.monotonic() + delay, data))
            if not data:
                break
        await sender
    except (OSError, asyncio.CancelledError):
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await sender
        raise


def nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def main(args: argparse.Namespace) -> None:
    delay = args.delay_ms / 1000
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    if args.netns:
        enter_netns(args.netns)  # the listener stays where it was made; new sockets are made in NAME

    handlers: set[asyncio.Task[None]] = set()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            handlers.add(task)
            task.add_done_callback(handlers.discard)
        nodelay(client_w)
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", args.target)
        except OSError:
            client_w.close()
            return
        nodelay(server_w)
        try:
            await asyncio.gather(pump(client_r, server_w, delay), pump(server_r, client_w, delay))
        except (OSError, asyncio.CancelledError):  # a peer went away, or we are stopping
            pass
        finally:
            for w in (client_w, server_w):
                w.close()

    server = await asyncio.start_server(handle, sock=listener)
    print(listener.getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()
    # Connections still open end here, on a running loop: left to loop.close(), their tasks
    # would be destroyed pending (a screen of warnings at every benchmark's end).
    for task in list(handlers):
        task.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--netns", default="", help="network namespace to connect in")
    ap.add_argument("--target", type=int, required=True, help="port on the namespace's 127.0.0.1")
    ap.add_argument("--delay-ms", type=float, default=25.0, help="delay of each direction")
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        loop.run_until_complete(main(ap.parse_args()))
    finally:
        loop.close()
    sys.exit(0)
