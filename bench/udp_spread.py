"""How the kernel spreads UDP datagrams over two reader processes: two SO_REUSEPORT sockets on
one port, or one socket shared by both (what `sipsync-server --workers` does), with one sender
or many. Run: python bench/udp_spread.py"""

from __future__ import annotations

import os
import socket
import time

DATAGRAMS = 4000
WORK_SECONDS = 0.0002  # per datagram, so that a reader is sometimes busy as a worker is


def _read(sock: socket.socket, out: int) -> None:
    count = 0
    sock.settimeout(1.0)
    try:
        while True:
            sock.recv(100)
            count += 1
            time.sleep(WORK_SECONDS)
    except socket.timeout:
        pass
    os.write(out, f"{count} ".encode())


def spread(shared: bool, senders: int) -> list[int]:
    if shared:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        readers = [sock, sock]
    else:
        readers = []
        for _ in range(2):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("127.0.0.1", readers[0].getsockname()[1] if readers else 0))
            readers.append(sock)
    port = readers[0].getsockname()[1]
    pipe_in, pipe_out = os.pipe()
    children = []
    for sock in readers:
        pid = os.fork()
        if pid == 0:
            _read(sock, pipe_out)
            os._exit(0)
        children.append(pid)
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(senders)]
    for n in range(DATAGRAMS):
        clients[n % senders].sendto(b"x", ("127.0.0.1", port))
        if n % 50 == 0:
            time.sleep(0.002)  # paced, so the receive buffers do not decide the result
    for pid in children:
        os.waitpid(pid, 0)
    os.close(pipe_out)
    counts = sorted(int(c) for c in os.read(pipe_in, 100).split())
    for sock in set(readers) | set(clients):
        sock.close()
    return counts


def main() -> None:
    for shared, senders in ((False, 1), (False, 16), (True, 1)):
        counts = spread(shared, senders)
        how = "one shared socket" if shared else "SO_REUSEPORT     "
        print(f"{how}  {senders:2d} sender(s): datagrams read per worker {counts}")


if __name__ == "__main__":
    main()
