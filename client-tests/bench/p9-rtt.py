#!/usr/bin/env python3
"""One 9P client on loopback, one request at a time: the round trip a server adds per request, without
a guest's time around it. Attaches to ANAME, then N times: walk to tree/dNNN/fNNN (a new fid), getattr
of it, clunk of it. Prints the median round trip of each in microseconds: "WALK GETATTR CLUNK".

  p9-rtt.py HOST PORT ANAME N [UID]  (the tree p9-bench.sh makes: tree/d000..d099/f000..f199;
                                      UID: attach as that user, default 0)

  p9-rtt.py HOST PORT ANAME opendir N [UID]  (N times: walk to tree/dNNN, Tlopen it, one Treaddir of
                                             8 KiB, clunk; prints the median "LOPEN READDIR" round trips:
                                             requests a server runs off its network thread)

  p9-rtt.py HOST PORT ANAME write MIB  (as root, msize 64 KiB: creates a file in the export's root,
                                        writes MIB MiB into it from start to end, one Twrite of
                                        msize - 24 bytes at a time, removes it; prints "MB/s P50_US")
"""
import socket
import statistics
import struct
import sys
import time

host, port, aname = sys.argv[1], int(sys.argv[2]), sys.argv[3]
writing = sys.argv[4] == 'write'
opendir = sys.argv[4] == 'opendir'
args = sys.argv[5:] if opendir else sys.argv[4:]
n = 0 if writing else int(args[0])
uid = int(args[1]) if len(args) > 1 and not writing else 0
sock = socket.create_connection((host, port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def s(text):
    b = text.encode()
    return struct.pack('<H', len(b)) + b


def recv_exactly(k):
    out = b''
    while len(out) < k:
        chunk = sock.recv(k - len(out))
        if not chunk:
            sys.exit('p9-rtt: the server closed the connection')
        out += chunk
    return out


def rpc(mtype, body, tag=1):
    sock.sendall(struct.pack('<IBH', 7 + len(body), mtype, tag) + body)
    size, rtype, _ = struct.unpack('<IBH', recv_exactly(7))
    rest = recv_exactly(size - 7)
    if rtype == 7:   # Rlerror
        sys.exit('p9-rtt: request type %d failed: errno %d' % (mtype, struct.unpack('<I', rest[:4])[0]))
    if rtype != mtype + 1:
        sys.exit('p9-rtt: reply type %d to request type %d' % (rtype, mtype))
    return rest


TVERSION, TATTACH, TWALK, TGETATTR, TCLUNK, TLCREATE, TWRITE, TREMOVE = 100, 104, 110, 24, 120, 14, 118, 122
TLOPEN, TREADDIR, O_DIRECTORY = 12, 40, 0o200000
msize = struct.unpack('<I', rpc(TVERSION, struct.pack('<I', 65536 if writing else 262144) + s('9P2000.L'), 0xFFFF)[:4])[0]
rpc(TATTACH, struct.pack('<II', 0, 0xFFFFFFFF) + s('root' if uid == 0 else 'u%d' % uid) + s(aname) + struct.pack('<I', uid))
if writing:
    name, size, piece = 'p9-rtt-write-%d' % time.time_ns(), int(sys.argv[5]) << 20, msize - 24
    rpc(TWALK, struct.pack('<IIH', 0, 1, 0))
    rpc(TLCREATE, struct.pack('<I', 1) + s(name) + struct.pack('<III', 0o1102, 0o644, 0))    # O_RDWR|O_CREAT|O_TRUNC
    data, took, at = b'w' * piece, [], 0
    t0 = time.perf_counter()
    while at < size:
        body = struct.pack('<IQI', 1, at, min(piece, size - at)) + data[:min(piece, size - at)]
        t1 = time.perf_counter_ns()
        at += struct.unpack('<I', rpc(TWRITE, body)[:4])[0]
        took.append(time.perf_counter_ns() - t1)
    secs = time.perf_counter() - t0
    rpc(TREMOVE, struct.pack('<I', 1))      # (and clunks the fid)
    print('%.0f %.1f' % (size / secs / 1e6, statistics.median(took) / 1000))
    sys.exit(0)
if opendir:
    lopen, readdir = [], []
    for i in range(n):
        rpc(TWALK, struct.pack('<IIH', 0, 1, 2) + s('tree') + s('d%03d' % (i % 100)))
        t0 = time.perf_counter_ns()
        rpc(TLOPEN, struct.pack('<II', 1, O_DIRECTORY))
        t1 = time.perf_counter_ns()
        rpc(TREADDIR, struct.pack('<IQI', 1, 0, 8192))
        t2 = time.perf_counter_ns()
        rpc(TCLUNK, struct.pack('<I', 1))
        lopen.append(t1 - t0)
        readdir.append(t2 - t1)
    print(' '.join('%.1f' % (statistics.median(v) / 1000) for v in (lopen, readdir)))
    sys.exit(0)
walk, getattr, clunk = [], [], []
for i in range(n):
    t0 = time.perf_counter_ns()
    rpc(TWALK, struct.pack('<IIH', 0, 1, 3) + s('tree') + s('d%03d' % (i % 100)) + s('f%03d' % (i * 7 % 200)))
    t1 = time.perf_counter_ns()
    rpc(TGETATTR, struct.pack('<IQ', 1, 0x3fff))
    t2 = time.perf_counter_ns()
    rpc(TCLUNK, struct.pack('<I', 1))
    t3 = time.perf_counter_ns()
    walk.append(t1 - t0)
    getattr.append(t2 - t1)
    clunk.append(t3 - t2)
print(' '.join('%.1f' % (statistics.median(v) / 1000) for v in (walk, getattr, clunk)))
