package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Listener access control: {@code --allow} refuses other peers at accept time (logged and counted),
 * a unix socket's {@code mode=}/{@code group=} decide which local users may connect — tried with
 * nbdinfo run as root and as nobody — and the metrics listener's operator actions are answered only to
 * this host and never to a web page.
 */
class ListenerAccessIT {
    @TempDir
    Path dir;

    @Test
    void allowRefusesOtherPeersAndServesTheRest() throws Exception {
        Path img = Tools.sparseImage(dir.resolve("disk.img"), 16 << 20, 1, 0, 1 << 20);
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--nbd-export", "disk=" + img, "--allow", "127.0.0.2/32", "--allow", "::1")) {
            // from 127.0.0.1: closed before any greeting
            try (Socket refused = new Socket("127.0.0.1", s.nbdPort)) {
                refused.setSoTimeout(5000);
                assertEquals(-1, refused.getInputStream().read(), "a peer outside --allow must be closed");
            }
            assertNotEquals(0, Tools.run(Duration.ofSeconds(20), "nbdinfo", "nbd://127.0.0.1:" + s.nbdPort + "/disk").exit());
            // from 127.0.0.2: served
            try (Socket ok = new Socket()) {
                ok.bind(new InetSocketAddress(InetAddress.getByName("127.0.0.2"), 0));
                ok.connect(new InetSocketAddress("127.0.0.1", s.nbdPort));
                ok.setSoTimeout(5000);
                byte[] greeting = ok.getInputStream().readNBytes(8);
                assertEquals("NBDMAGIC", new String(greeting), "a peer inside --allow gets the greeting");
            }
            assertTrue(s.metric("bridgefs_connections_refused_total{path=\"nbd\"}") >= 2);
            assertTrue(s.log().contains("not in --allow"), s.log());
            assertEquals(0, s.stop());
        }
    }

    @Test
    void unixSocketPermissionsDecideWhoConnects() throws Exception {
        Tools.require("setpriv");
        if (!BackingErrorsIT.root()) System.err.println("ListenerAccessIT: not root, cannot run nbdinfo as nobody: this test does not run");
        org.junit.jupiter.api.Assumptions.assumeTrue(BackingErrorsIT.root(), "running a client as nobody needs root (CI runs as root)");
        Path img = Tools.sparseImage(dir.resolve("disk.img"), 16 << 20, 1, 0, 1 << 20);
        Files.setPosixFilePermissions(dir, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
        Path sock = dir.resolve("nbd.sock");
        String uri = "nbd+unix:///disk?socket=" + sock;
        for (String[] c : new String[][] {{"0660", "root", "refused"}, {"0666", "root", "served"}}) {
            try (BridgefsProcess s = BridgefsProcess.start(dir, "--nbd-listen", "unix:" + sock + ",mode=" + c[0] + ",group=" + c[1],
                    "--nbd-export", "disk=" + img)) {
                int mode = (Integer) Files.getAttribute(sock, "unix:mode", LinkOption.NOFOLLOW_LINKS) & 0777;
                assertEquals(Integer.parseInt(c[0], 8), mode, "socket mode");
                assertEquals(c[1], Files.getAttribute(sock, "posix:group", LinkOption.NOFOLLOW_LINKS).toString());
                Tools.run(Duration.ofSeconds(20), "nbdinfo", "--size", uri).ok("root connects");
                Tools.Result nobody = Tools.run(Duration.ofSeconds(20), "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "nbdinfo", "--size", uri);
                if (c[2].equals("refused")) assertNotEquals(0, nobody.exit(), "nobody must not connect to a " + c[0] + " root socket");
                else nobody.ok("nobody connects to a " + c[0] + " socket");
                assertEquals(0, s.stop());
            }
        }
    }

    /**
     * A metrics listener on every address (for a Prometheus elsewhere): /metrics is served to anyone, but
     * POST /drop-caches (which empties everyone's cache), POST /reset-latency, POST /exports/NAME/rescan and GET /verify (a full
     * recount under the cache lock) only to a peer on this host, and never to a request with an Origin
     * header (a web page's cross-site form): 403 and nothing done.
     */
    @Test
    void operatorActionsOnlyFromThisHost() throws Exception {
        InetAddress external = null;
        for (var nif : java.util.Collections.list(java.net.NetworkInterface.getNetworkInterfaces())) {
            if (!nif.isUp() || nif.isLoopback()) continue;
            for (InetAddress a : java.util.Collections.list(nif.getInetAddresses())) {
                if (a instanceof java.net.Inet4Address) external = a;
            }
        }
        assertNotNull(external, "this test needs an IPv4 address besides loopback to connect from");
        Path img = Tools.sparseImage(dir.resolve("disk.img"), 16 << 20, 1, 0, 1 << 20);
        int metrics = BridgefsProcess.freePort();
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--nbd-export", "disk=" + img, "--metrics-listen", "0.0.0.0:" + metrics)) {
            var http = java.net.http.HttpClient.newHttpClient();
            java.net.URI far = java.net.URI.create("http://" + external.getHostAddress() + ":" + metrics);
            java.net.URI near = java.net.URI.create("http://127.0.0.1:" + metrics);
            var post = java.net.http.HttpRequest.BodyPublishers.noBody();
            var text = java.net.http.HttpResponse.BodyHandlers.ofString();
            assertEquals(200, http.send(java.net.http.HttpRequest.newBuilder(far.resolve("/metrics")).build(), text).statusCode());
            var refused = http.send(java.net.http.HttpRequest.newBuilder(far.resolve("/drop-caches")).POST(post).build(), text);
            assertEquals(403, refused.statusCode(), refused.body());
            assertEquals(403, http.send(java.net.http.HttpRequest.newBuilder(far.resolve("/verify")).build(), text).statusCode());
            assertEquals(403, http.send(java.net.http.HttpRequest.newBuilder(far.resolve("/exports/disk/rescan")).POST(post).build(), text).statusCode());
            assertEquals(403, http.send(java.net.http.HttpRequest.newBuilder(far.resolve("/reset-latency")).POST(post).build(), text).statusCode());
            var page = http.send(java.net.http.HttpRequest.newBuilder(near.resolve("/drop-caches")).header("Origin", "http://example.com").POST(post).build(), text);
            assertEquals(403, page.statusCode(), "a web page's request, even from this host");
            var ok = http.send(java.net.http.HttpRequest.newBuilder(near.resolve("/drop-caches")).POST(post).build(), text);
            assertEquals(200, ok.statusCode(), ok.body());
            assertEquals(200, http.send(java.net.http.HttpRequest.newBuilder(near.resolve("/verify")).build(), text).statusCode());
        }
    }

    /**
     * The metrics listener takes few connections (64, 16 per peer address): before, it took any number,
     * each able to hold a 64 KiB request buffer.
     */
    @Test
    void theMetricsListenerTakesFewConnections() throws Exception {
        Path img = Tools.sparseImage(dir.resolve("disk.img"), 16 << 20, 1, 0, 1 << 20);
        try (BridgefsProcess s = BridgefsProcess.start(dir, "--nbd-export", "disk=" + img)) {
            java.util.List<Socket> held = new java.util.ArrayList<>();
            try {
                for (int i = 0; i < 16; i++) held.add(new Socket("127.0.0.1", s.metricsPort));
                Thread.sleep(300);
                try (Socket extra = new Socket("127.0.0.1", s.metricsPort)) {
                    extra.setSoTimeout(5000);
                    assertEquals(-1, extra.getInputStream().read(), "a 17th connection from one address is closed at once");
                }
                assertTrue(s.log().contains("metrics connection refused"), s.log());
            } finally {
                for (Socket k : held) k.close();
            }
            Thread.sleep(300);
            var http = java.net.http.HttpClient.newHttpClient();
            var r = http.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://127.0.0.1:" + s.metricsPort + "/metrics")).build(),
                    java.net.http.HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode(), "served again once they went");
        }
    }
}
