package io.bridgefs.server;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.server.cache.CacheMode;
import io.bridgefs.server.config.ListenAddress;
import io.bridgefs.server.config.NbdExportSpec;
import io.bridgefs.server.config.ServerConfig;
import java.lang.management.ManagementFactory;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.management.ObjectName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The server in-process: metrics over HTTP (Prometheus text and JSON) and JMX. */
class BridgefsServerTest {

    @Test
    void metricsAreExposedOverHttpAndJmx(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("d.img");
        try (var raf = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            raf.setLength(1 << 20);
        }
        ServerConfig cfg = new ServerConfig(ListenAddress.parse("127.0.0.1:0"),
                List.of(new NbdExportSpec("jmxdisk", img, false, "d", 0)), 16 << 20, CacheMode.WRITEBACK,
                ListenAddress.parse("127.0.0.1:0"), 2, 0);
        try (BridgefsServer s = BridgefsServer.start(cfg)) {
            assertNotNull(s.nbdAddress());
            s.nbdExports().get(0).file().read(io.bridgefs.server.cache.IoPath.NBD, 0, java.nio.ByteBuffer.allocate(8192));
            var http = HttpClient.newHttpClient();
            String base = "http://127.0.0.1:" + s.metricsAddress().getPort();
            HttpResponse<String> prom = http.send(HttpRequest.newBuilder(URI.create(base + "/metrics")).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, prom.statusCode());
            assertTrue(prom.body().contains("bridgefs_cache_fills_total{path=\"nbd\"} 2\n"), prom.body());
            assertTrue(prom.body().contains("# TYPE bridgefs_cache_hits_total counter"));
            HttpResponse<String> json = http.send(HttpRequest.newBuilder(URI.create(base + "/stats")).build(), HttpResponse.BodyHandlers.ofString());
            assertTrue(json.body().startsWith("{\"cache\":{\"nbd\":{\"cache_hits\":0,\"cache_misses\":2,\"cache_fills\":2"), json.body());
            assertEquals(404, http.send(HttpRequest.newBuilder(URI.create(base + "/nope")).build(), HttpResponse.BodyHandlers.ofString()).statusCode());

            var mbs = ManagementFactory.getPlatformMBeanServer();
            var fills = mbs.queryNames(new ObjectName("bridgefs:name=bridgefs.cache.nbd.fills,*"), null);
            assertEquals(1, fills.size(), "cache counters are JMX gauges");
            assertEquals(2L, mbs.getAttribute(fills.iterator().next(), "Value"));
            assertFalse(mbs.queryNames(new ObjectName("bridgefs:name=bridgefs.nbd.jmxdisk.read,*"), null).isEmpty(), "per-export timers over JMX");
        }
        assertTrue(Files.exists(img));
    }
}
