package io.bridgefs.clienttests;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A loopback TCP proxy that records what each client sends (its first 256 KiB) to one file per
 * connection: how {@code client-tests/fuzz/capture-corpus.sh} captures a Linux guest's 9P session for
 * the fuzzing corpus ({@code -Dcorpus.capture=DIR} on the guest test).
 */
final class TeeProxy implements AutoCloseable {
    static final int MAX = 256 * 1024;
    private final ServerSocket server;
    private final AtomicInteger n = new AtomicInteger();

    TeeProxy(int target, Path dir, String prefix) throws IOException {
        server = new ServerSocket(0, 16, InetAddress.getLoopbackAddress());
        Files.createDirectories(dir);
        Thread t = new Thread(() -> {
            try {
                while (true) {
                    Socket c = server.accept();
                    Socket s = new Socket(InetAddress.getLoopbackAddress(), target);
                    Path out = dir.resolve(String.format("%s-%02d.bin", prefix, n.incrementAndGet()));
                    pump(s.getInputStream(), c.getOutputStream(), null);
                    pump(c.getInputStream(), s.getOutputStream(), Files.newOutputStream(out));
                }
            } catch (IOException e) {
                // closed
            }
        }, "tee-proxy");
        t.setDaemon(true);
        t.start();
    }

    int port() { return server.getLocalPort(); }

    private static void pump(InputStream in, OutputStream out, OutputStream record) {
        Thread t = new Thread(() -> {
            long kept = 0;
            byte[] b = new byte[65536];
            try (in; out; record) {
                int r;
                while ((r = in.read(b)) > 0) {
                    if (record != null && kept < MAX) {
                        int k = (int) Math.min(r, MAX - kept);
                        record.write(b, 0, k);
                        kept += k;
                    }
                    out.write(b, 0, r);
                }
            } catch (IOException e) {
                // one side closed
            }
        }, "tee-pump");
        t.setDaemon(true);
        t.start();
    }

    @Override
    public void close() throws IOException {
        server.close();
    }
}
