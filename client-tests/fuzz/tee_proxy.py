#!/usr/bin/env python3
"""A TCP proxy that records what each client sends (client to server bytes), one file per connection.

usage: tee_proxy.py LISTEN_PORT SERVER_PORT OUT_DIR PREFIX [MAX_BYTES]
Ends when its parent kills it. Used by capture-corpus.sh to build the fuzzing corpus from real clients.
"""
import os, socket, sys, threading

listen_port, server_port, out_dir, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
max_bytes = int(sys.argv[5]) if len(sys.argv) > 5 else 256 * 1024
counter = [0]
lock = threading.Lock()

def pump(src, dst, record):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if record is not None and record[1] < max_bytes:
                chunk = data[: max_bytes - record[1]]
                record[0].write(chunk)
                record[1] += len(chunk)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

def handle(client):
    with lock:
        counter[0] += 1
        n = counter[0]
    server = socket.create_connection(("127.0.0.1", server_port))
    f = open(os.path.join(out_dir, "%s-%02d.bin" % (prefix, n)), "wb")
    record = [f, 0]
    t = threading.Thread(target=pump, args=(server, client, None), daemon=True)
    t.start()
    pump(client, server, record)
    t.join(5)
    f.close()
    client.close()
    server.close()

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port))
srv.listen(16)
while True:
    c, _ = srv.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
